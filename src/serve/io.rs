//! A connection's socket as hyper (or TLS) reads and writes it, counting what the
//! client sends for the table ([`Progress`]) and holding the client to the write
//! timeout.
//!
//! **The write timeout.** An answer's bytes are written from the first write until a
//! flush completes; if the client has not taken them within the timeout (it stopped
//! reading, or pipelines requests and never reads), the write fails with `TimedOut` and
//! hyper closes the connection. A client that reads is never near it: the timeout
//! counts only while the socket refuses more.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::table::Progress;

/// `S`, counting bytes read into `progress` and failing writes the client does not take
/// within `write_timeout`.
pub struct Guarded<S> {
    inner: S,
    progress: Arc<Progress>,
    write_timeout: Duration,
    /// When the bytes not yet flushed began to be written.
    writing_since: Option<Instant>,
    /// Armed at `writing_since + write_timeout` while the socket refuses more.
    deadline: Pin<Box<Sleep>>,
}

impl<S> Guarded<S> {
    pub fn new(inner: S, progress: Arc<Progress>, write_timeout: Duration) -> Self {
        Self {
            inner,
            progress,
            write_timeout,
            writing_since: None,
            deadline: Box::pin(tokio::time::sleep(write_timeout)),
        }
    }

    /// The socket refused more: still pending, or out of time.
    fn refused<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let since = *self.writing_since.get_or_insert_with(Instant::now);
        let deadline = since + self.write_timeout;
        if self.deadline.deadline() != deadline {
            self.deadline.as_mut().reset(deadline);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client did not read its answer within {}",
                    humantime::format_duration(self.write_timeout)
                ),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// A write is under way: the clock runs from the first one not yet flushed.
    fn writing(&mut self) {
        self.writing_since.get_or_insert_with(Instant::now);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = read {
            self.progress.received(buf.filled().len() - before);
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.writing();
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => self.refused(cx),
            ready => ready,
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.writing();
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.refused(cx),
            ready => ready,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.refused(cx),
            Poll::Ready(Ok(())) => {
                // Everything written has gone: the next answer starts its own clock.
                self.writing_since = None;
                Poll::Ready(Ok(()))
            }
            failed => failed,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_shutdown(cx) {
            Poll::Pending => self.refused(cx),
            done => done,
        }
    }
}
