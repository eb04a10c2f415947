//! What is checked of the peer before anything acts on it, for every procedure that
//! does (`rejoin`, `switchover`): that it is another server than this host's own
//! ([`identity`]: a `[peer]` naming this host's database would have `rejoin` make the
//! only primary read-only, and `switchover` fence it), and that the `[peer]` account may
//! do what a switchover does there ([`grants`]). Reads only.

use crate::edges::Edges;
use crate::mariadb::{DbState, Server};
use crate::readiness::assess;

/// The peer is another server than this host's own: its `@@server_id` differs.
/// Replication tells servers apart by it and a pair cannot replicate with one id on
/// both sides, so an equal id is this host itself (or a pair replication cannot work
/// with): refused either way, naming both.
pub fn identity(
    own: &DbState,
    own_name: &str,
    peer: &DbState,
    peer_name: &str,
) -> Result<(), String> {
    if own.server_id != peer.server_id {
        return Ok(());
    }
    Err(format!(
        "the peer {peer_name}'s database has server_id {}, the same as this host's own ({own_name}): [peer] names this host's own database (check its host and port), or the two servers share a server_id, which replication cannot work with. Nothing was changed",
        peer.server_id
    ))
}

/// [`identity`], read now from both databases at once; an error when either cannot be
/// read or they are one server.
pub async fn another_server(edges: &Edges, peer: &Server, peer_name: &str) -> anyhow::Result<()> {
    let (own, theirs) = tokio::join!(edges.own.state(), peer.state());
    identity(&own?, &edges.own.describe(), &theirs?, peer_name).map_err(|e| anyhow::anyhow!(e))
}

/// The `[peer]` account holds what the switchover's fence, its undo and `rejoin_peer`
/// need on the peer (a server of `version`), from `SHOW GRANTS` there.
pub async fn grants(peer: &Server, user: &str, version: (u16, u16)) -> Result<String, String> {
    match peer.grants().await {
        Ok(lines) => assess::peer_grants(&lines, user, version),
        Err(e) => Err(format!(
            "cannot read the grants of {user} on the peer: {e:#}"
        )),
    }
}
