//! One converter per table: each takes a table of the raw file and returns the type the
//! program uses, or an error naming the key. [`Config::parse`](super::Config::parse)
//! only calls them in turn. A key left out takes its value from `defaults.rs`; the
//! checks of single values (durations, ports, secrets) are the [`Validator`]'s own.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::tls::{ChannelConfig, ChannelTls};
use super::validate::{Validator, host_name_problem};
use super::{
    Address, AppsConfig, CheckConfig, ConfigError, DnsConfig, DnsRecordConfig, MetricsConfig,
    NodeConfig, PeerConfig, ProbeConfig, PromotionConfig, ReplicaConfig, SmokeConfig,
    TelegramConfig, TlsMode, WebhookConfig, WebhookFormat, WitnessRef, defaults, is_loopback, raw,
};

impl Validator<'_> {
    /// `[node]`.
    pub(super) fn node(&self, raw: &raw::Node) -> Result<NodeConfig, ConfigError> {
        Ok(NodeConfig {
            name: self.node_name(raw.name.as_deref())?,
            state_dir: self.resolve(raw.state_dir.as_deref().unwrap_or(defaults::STATE_DIR)),
        })
    }

    /// `node.name`, the host name when left out.
    pub(super) fn node_name(&self, name: Option<&str>) -> Result<String, ConfigError> {
        match name {
            Some(name) => self.non_empty("node.name", name),
            None => Ok(defaults::node_name()),
        }
    }

    /// `[probe]`, with its checks, self-checks and witnesses.
    pub(super) fn probe(&mut self, raw: &raw::Probe) -> Result<ProbeConfig, ConfigError> {
        let interval = self.duration_or(
            "probe.interval",
            raw.interval.as_deref(),
            defaults::PROBE_INTERVAL,
        )?;
        let timeout = self.duration_or(
            "probe.timeout",
            raw.timeout.as_deref(),
            defaults::PROBE_TIMEOUT,
        )?;
        self.shorter_than_interval("probe.timeout", timeout, interval)?;
        let suspect_interval = self
            .optional_duration("probe.suspect_interval", raw.suspect_interval.as_deref())?
            .unwrap_or_else(|| defaults::suspect_interval(interval));
        if suspect_interval > interval {
            return Err(self.error(
                "probe.suspect_interval",
                format!(
                    "{} must not be longer than probe.interval ({}): it is the cadence while the primary is in doubt",
                    humantime::format_duration(suspect_interval),
                    humantime::format_duration(interval)
                ),
            ));
        }
        let failures_before_promotion = self.count(
            "probe.failures_before_promotion",
            raw.failures_before_promotion,
            defaults::FAILURES_BEFORE_PROMOTION,
        )?;
        let checks = self.primary_checks(&raw.checks)?;
        let self_checks = self.self_checks(&raw.self_checks)?;
        // Unset: derived each round from the replica's heartbeat period (see defaults).
        let replication_silence = self.optional_duration(
            "probe.replication_silence",
            raw.replication_silence.as_deref(),
        )?;
        let witnesses = self.witnesses(&raw.witnesses, interval, timeout)?;
        if self_checks.is_empty() && witnesses.is_empty() {
            // Measured by the network fault campaign: isolated, such a standby promotes.
            self.warn(
                "probe: neither [[probe.self_checks]] nor [[probe.witnesses]] is configured: a standby cut off from the network cannot tell that from a dead primary, and would promote itself",
            );
        }
        Ok(ProbeConfig {
            interval,
            suspect_interval,
            failures_before_promotion,
            timeout,
            fail_when: raw.fail_when.unwrap_or(defaults::FAIL_WHEN),
            checks,
            self_checks,
            confirm_with_replication: raw
                .confirm_with_replication
                .unwrap_or(defaults::CONFIRM_WITH_REPLICATION),
            replication_silence,
            witnesses,
        })
    }

    /// `[[probe.checks]]`: at least one.
    pub(super) fn primary_checks(
        &mut self,
        raw: &[raw::Check],
    ) -> Result<Vec<CheckConfig>, ConfigError> {
        if raw.is_empty() {
            return Err(self.error("probe.checks", "at least one [[probe.checks]] is needed"));
        }
        let mut checks = Vec::new();
        for (i, check) in raw.iter().enumerate() {
            checks.push(self.check(&format!("probe.checks[{i}]"), check)?);
        }
        Ok(checks)
    }

    /// `[[probe.self_checks]]`: targets that are not the primary, so never `mysql`.
    fn self_checks(&mut self, raw: &[raw::Check]) -> Result<Vec<CheckConfig>, ConfigError> {
        let mut self_checks = Vec::new();
        for (i, check) in raw.iter().enumerate() {
            let prefix = format!("probe.self_checks[{i}]");
            if matches!(check, raw::Check::Mysql { .. }) {
                return Err(self.error(
                    &prefix,
                    "self-checks are tcp or http targets that are not the primary",
                ));
            }
            self_checks.push(self.check(&prefix, check)?);
        }
        Ok(self_checks)
    }

    /// One `[[probe.checks]]` (or self-check) table, its keys named under `prefix`.
    fn check(&mut self, prefix: &str, check: &raw::Check) -> Result<CheckConfig, ConfigError> {
        let key = |field: &str| format!("{prefix}.{field}");
        Ok(match check {
            raw::Check::Http {
                url,
                expect_status,
                expect_body,
            } => CheckConfig::Http {
                url: self.url(&key("url"), url)?,
                expect_status: match expect_status {
                    None => None,
                    Some(s) if (100..=599).contains(s) => Some(*s as u16),
                    Some(s) => {
                        return Err(
                            self.error(&key("expect_status"), format!("{s} is not an HTTP status"))
                        );
                    }
                },
                expect_body: expect_body.clone(),
            },
            raw::Check::Tcp { address } => CheckConfig::Tcp {
                address: self.address(&key("address"), address)?,
            },
            raw::Check::Mysql {
                host,
                port,
                user,
                password,
                password_file,
                tls,
                tls_ca_file,
                tls_cert_file,
                tls_key_file,
            } => {
                let host = self.non_empty(&key("host"), host)?;
                let tls = raw::Tls {
                    mode: tls.as_deref(),
                    ca_file: tls_ca_file.as_deref(),
                    cert_file: tls_cert_file.as_deref(),
                    key_file: tls_key_file.as_deref(),
                };
                CheckConfig::Mysql {
                    port: self.port(&key("port"), *port, defaults::MYSQL_PORT)?,
                    user: self.non_empty(&key("user"), user)?,
                    password: self.secret(
                        &key("password"),
                        password.as_deref(),
                        password_file.as_deref(),
                    )?,
                    tls: self.tls(prefix, &host, tls)?,
                    host,
                }
            }
        })
    }

    /// `[[probe.witnesses]]`, each with its own name.
    fn witnesses(
        &mut self,
        raw: &[raw::Witness],
        interval: Duration,
        probe_timeout: Duration,
    ) -> Result<Vec<WitnessRef>, ConfigError> {
        let mut witnesses: Vec<WitnessRef> = Vec::new();
        for (i, w) in raw.iter().enumerate() {
            let witness = self.witness(i, w, &witnesses, interval, probe_timeout)?;
            witnesses.push(witness);
        }
        Ok(witnesses)
    }

    /// `probe.witnesses[i]`; `known` are the ones before it. Its time limit must be
    /// shorter than the interval, so a round ends before the next is due.
    fn witness(
        &mut self,
        i: usize,
        w: &raw::Witness,
        known: &[WitnessRef],
        interval: Duration,
        probe_timeout: Duration,
    ) -> Result<WitnessRef, ConfigError> {
        let key = |field: &str| format!("probe.witnesses[{i}].{field}");
        let url = self.url(&key("url"), &w.url)?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(self.error(
                &key("url"),
                format!("{:?} must be the witness's base URL, without ? or #", w.url),
            ));
        }
        let name = match w.name.as_deref() {
            Some(name) => self.non_empty(&key("name"), name)?,
            None => defaults::witness_name(&url, &w.url),
        };
        if known.iter().any(|other| other.name == name) {
            return Err(self.error(
                &key("name"),
                format!("{name:?} names two witnesses; give each its own name"),
            ));
        }
        let timeout = self
            .optional_duration(&key("timeout"), w.timeout.as_deref())?
            .unwrap_or_else(|| defaults::witness_timeout(probe_timeout, interval));
        self.shorter_than_interval(&key("timeout"), timeout, interval)?;
        let token = self.secret(&key("token"), w.token.as_deref(), w.token_file.as_deref())?;
        Ok(WitnessRef {
            name,
            url,
            token,
            timeout,
        })
    }

    /// `[replica]`: the standby's own MariaDB.
    pub(super) fn replica(&mut self, r: &raw::Replica) -> Result<ReplicaConfig, ConfigError> {
        let host = r.host.as_deref().unwrap_or(defaults::REPLICA_HOST);
        let mut replica = ReplicaConfig {
            host: self.non_empty("replica.host", host)?,
            port: self.port("replica.port", r.port, defaults::MYSQL_PORT)?,
            user: self.non_empty("replica.user", &r.user)?,
            password: self.secret(
                "replica.password",
                r.password.as_deref(),
                r.password_file.as_deref(),
            )?,
            connection_name: r
                .connection_name
                .as_deref()
                .unwrap_or(defaults::REPLICA_CONNECTION_NAME)
                .to_string(),
            apply_timeout: self.duration_or(
                "replica.apply_timeout",
                r.apply_timeout.as_deref(),
                defaults::REPLICA_APPLY_TIMEOUT,
            )?,
            reset_replica: r.reset_replica.unwrap_or(defaults::RESET_REPLICA),
            max_lag: self.duration_or(
                "replica.max_lag",
                r.max_lag.as_deref(),
                defaults::REPLICA_MAX_LAG,
            )?,
            connect_address: Address {
                host: host.to_string(),
                port: self.port("replica.port", r.port, defaults::MYSQL_PORT)?,
            },
            tls: self.tls("replica", host, r.tls_keys())?,
        };
        if let Some(text) = &r.connect_address {
            replica.connect_address = self.host_port("replica.connect_address", text)?;
        }
        if replica.connection_name.contains(['\'', '\\', '`']) {
            return Err(self.error(
                "replica.connection_name",
                "must not contain quotes or backslashes",
            ));
        }
        Ok(replica)
    }

    /// `[apps]`: the units started on promotion, in order.
    pub(super) fn apps(&self, raw: &raw::Apps) -> Result<AppsConfig, ConfigError> {
        let mut units = Vec::new();
        for (i, unit) in raw.units.iter().enumerate() {
            units.push(self.unit_name(&format!("apps.units[{i}]"), unit)?);
        }
        Ok(AppsConfig {
            units,
            start_timeout: self.duration_or(
                "apps.start_timeout",
                raw.start_timeout.as_deref(),
                defaults::APPS_START_TIMEOUT,
            )?,
            stop_when_demoted: raw
                .stop_when_demoted
                .unwrap_or(defaults::STOP_APPS_WHEN_DEMOTED),
        })
    }

    /// `[peer]`: the other host of the pair; never this host's own database.
    pub(super) fn peer(
        &mut self,
        raw: Option<&raw::Peer>,
        replica: &ReplicaConfig,
    ) -> Result<Option<PeerConfig>, ConfigError> {
        let Some(p) = raw else {
            return Ok(None);
        };
        let host = self.non_empty("peer.host", &p.host)?;
        let port = self.port("peer.port", p.port, defaults::MYSQL_PORT)?;
        // `localhost`, `127.0.0.1` and `::1` name one listener (127.0.0.2 may be
        // another).
        let local =
            |h: &str| ["localhost", "127.0.0.1", "::1"].contains(&h.to_ascii_lowercase().as_str());
        let same_host =
            host.eq_ignore_ascii_case(&replica.host) || (local(&host) && local(&replica.host));
        if same_host && port == replica.port {
            return Err(self.error(
                "peer.host",
                format!(
                    "{host}:{port} is this host's own database ([replica]); the peer is the other host of the pair"
                ),
            ));
        }
        let name = match &p.name {
            Some(name) => self.non_empty("peer.name", name)?,
            None => format!("{host}:{port}"),
        };
        let address = &replica.connect_address;
        if is_loopback(&address.host) && !is_loopback(&host) {
            self.warn(format!(
                "replica.connect_address: {address} is loopback (the default is [replica] host:port), but the peer is at {host}: `switchover` points the old primary's replication there, which it cannot reach; set connect_address to this host's database as the peer reaches it"
            ));
        }
        let replication_user = self.non_empty("peer.replication_user", &p.replication_user)?;
        if replication_user.contains(['\'', '\\']) {
            return Err(self.error(
                "peer.replication_user",
                "must not contain quotes or backslashes",
            ));
        }
        Ok(Some(PeerConfig {
            name,
            user: self.non_empty("peer.user", &p.user)?,
            password: self.secret(
                "peer.password",
                p.password.as_deref(),
                p.password_file.as_deref(),
            )?,
            replication_user,
            replication_password: self.secret(
                "peer.replication_password",
                p.replication_password.as_deref(),
                p.replication_password_file.as_deref(),
            )?,
            catch_up_timeout: self.duration_or(
                "peer.catch_up_timeout",
                p.catch_up_timeout.as_deref(),
                defaults::PEER_CATCH_UP_TIMEOUT,
            )?,
            switchover_timeout: self.duration_or(
                "peer.switchover_timeout",
                p.switchover_timeout.as_deref(),
                defaults::PEER_SWITCHOVER_TIMEOUT,
            )?,
            write_drain_timeout: self.duration_or(
                "peer.write_drain_timeout",
                p.write_drain_timeout.as_deref(),
                defaults::PEER_WRITE_DRAIN_TIMEOUT,
            )?,
            fence_when_not_serving: p
                .fence_when_not_serving
                .unwrap_or(defaults::FENCE_WHEN_NOT_SERVING),
            tls: self.tls("peer", &host, p.tls_keys())?,
            host,
            port,
        }))
    }

    /// `[replication]`: the channel every `CHANGE MASTER` of this program sets up. Its
    /// TLS defaults by the address it replicates from (`[peer]`, else the primary's
    /// first `mysql` check), as a server's own TLS does; its paths are the database
    /// hosts', never opened here.
    pub(super) fn replication(
        &mut self,
        r: &raw::Replication,
        peer: Option<&PeerConfig>,
        probe: &ProbeConfig,
    ) -> Result<ChannelConfig, ConfigError> {
        let heartbeat_period = self.duration_or(
            "replication.heartbeat_period",
            r.heartbeat_period.as_deref(),
            defaults::HEARTBEAT_PERIOD,
        )?;
        // MariaDB keeps the period to the millisecond, at most 4294967 s.
        if heartbeat_period.subsec_nanos() % 1_000_000 != 0
            || heartbeat_period > Duration::from_secs(4_294_967)
        {
            return Err(self.error(
                "replication.heartbeat_period",
                "must be whole milliseconds, from 1ms to 4294967s",
            ));
        }
        let connect_retry = self.duration_or(
            "replication.connect_retry",
            r.connect_retry.as_deref(),
            defaults::CONNECT_RETRY,
        )?;
        if connect_retry.subsec_nanos() != 0 || connect_retry.as_secs() > u64::from(u32::MAX) {
            return Err(self.error(
                "replication.connect_retry",
                "must be whole seconds (MASTER_CONNECT_RETRY), e.g. \"1s\" or \"10s\"",
            ));
        }
        let retry_count = r
            .retry_count
            .map(|n| self.count("replication.retry_count", Some(n), 1))
            .transpose()?;
        let source = peer.map(|p| p.host.clone()).or_else(|| {
            probe.checks.iter().find_map(|check| match check {
                CheckConfig::Mysql { host, .. } => Some(host.clone()),
                _ => None,
            })
        });
        let tls = self.channel_tls(r.tls_keys(), source.as_deref())?;
        // The rounds that reach the threshold run at the suspect cadence.
        let rounds = probe.suspect_interval * probe.failures_before_promotion;
        if heartbeat_period * crate::verdict::HEARTBEATS_OF_SILENCE > rounds {
            self.warn(format!(
                "replication.heartbeat_period: {} heartbeats of {} take longer than failures_before_promotion × suspect_interval ({}): a hung primary is confirmed late",
                crate::verdict::HEARTBEATS_OF_SILENCE,
                humantime::format_duration(heartbeat_period),
                humantime::format_duration(rounds)
            ));
        }
        Ok(ChannelConfig {
            heartbeat_period,
            connect_retry,
            retry_count,
            semi_sync: r.semi_sync.unwrap_or(defaults::SEMI_SYNC),
            tls,
        })
    }

    /// The channel's TLS keys; `source`: the host it replicates from, when known.
    fn channel_tls(
        &mut self,
        raw: raw::Tls<'_>,
        source: Option<&str>,
    ) -> Result<ChannelTls, ConfigError> {
        let mode = match source {
            Some(host) => self.tls_mode("replication.tls", raw.mode, host)?,
            // No address to go by: as for any server elsewhere.
            None => self.tls_mode("replication.tls", raw.mode, "")?,
        };
        let path = |key: &str, text: Option<&str>| -> Result<Option<String>, ConfigError> {
            text.map(|t| self.server_path(key, t)).transpose()
        };
        let tls = ChannelTls {
            mode,
            ca_file: path("replication.tls_ca_file", raw.ca_file)?,
            cert_file: path("replication.tls_cert_file", raw.cert_file)?,
            key_file: path("replication.tls_key_file", raw.key_file)?,
        };
        if tls.ca_file.is_some() && !mode.verifies() {
            return Err(self.error(
                "replication.tls_ca_file",
                format!(
                    "only verify_ca and verify_identity check a CA, and tls is {:?}",
                    mode.as_str()
                ),
            ));
        }
        match (&tls.cert_file, &tls.key_file) {
            (Some(_), None) => {
                return Err(self.error(
                    "replication.tls_key_file",
                    "missing: tls_cert_file needs its key",
                ));
            }
            (None, Some(_)) => {
                return Err(self.error(
                    "replication.tls_cert_file",
                    "missing: tls_key_file needs its certificate",
                ));
            }
            (Some(_), Some(_)) if mode == TlsMode::Disabled => {
                return Err(self.error(
                    "replication.tls_cert_file",
                    "a client certificate needs TLS, and tls is \"disabled\"",
                ));
            }
            _ => {}
        }
        if mode == TlsMode::VerifyCa && tls.ca_file.is_none() {
            return Err(self.error(
                "replication.tls_ca_file",
                "missing: verify_ca checks the source's certificate against this CA (its path on the database hosts)",
            ));
        }
        if let Some(host) = source {
            self.unverified_warning(
                "replication",
                host,
                mode,
                raw.mode.is_some(),
                tls.ca_file.is_some(),
                "the replication password and every transaction",
            );
        }
        Ok(tls)
    }

    /// `[dns]` and its `[[dns.records]]`: at least one, none listed twice.
    pub(super) fn dns(&mut self, d: &raw::Dns) -> Result<DnsConfig, ConfigError> {
        let provider = d.provider.as_deref().unwrap_or(defaults::DNS_PROVIDER);
        if provider != defaults::DNS_PROVIDER {
            return Err(self.error(
                "dns.provider",
                format!(
                    "{provider:?} is not supported; the only provider is {:?}",
                    defaults::DNS_PROVIDER
                ),
            ));
        }
        let default_zone = d
            .zone_id
            .as_deref()
            .map(|z| self.non_empty("dns.zone_id", z))
            .transpose()?;
        if d.records.is_empty() {
            return Err(self.error("dns.records", "at least one [[dns.records]] is needed"));
        }
        let mut records: Vec<DnsRecordConfig> = Vec::new();
        for (i, rec) in d.records.iter().enumerate() {
            let record = self.dns_record(i, rec, default_zone.as_deref())?;
            if records.iter().any(|r| {
                r.name == record.name
                    && r.record_type == record.record_type
                    && r.zone_id == record.zone_id
            }) {
                return Err(self.error(
                    &format!("dns.records[{i}].name"),
                    format!("{} {} is listed twice", record.name, record.record_type),
                ));
            }
            records.push(record);
        }
        Ok(DnsConfig {
            provider: provider.to_string(),
            api_token: self.secret(
                "dns.api_token",
                d.api_token.as_deref(),
                d.api_token_file.as_deref(),
            )?,
            api_base: self.url(
                "dns.api_base",
                d.api_base.as_deref().unwrap_or(defaults::DNS_API_BASE),
            )?,
            update_timeout: self.duration_or(
                "dns.update_timeout",
                d.update_timeout.as_deref(),
                defaults::DNS_UPDATE_TIMEOUT,
            )?,
            records,
        })
    }

    /// `dns.records[i]`: its name as Cloudflare stores it (lower case, no final dot), a
    /// content that fits its type (an IPv4 address for A, IPv6 for AAAA, a host name
    /// other than its own for CNAME), and a zone (its own or `dns.zone_id`).
    fn dns_record(
        &self,
        i: usize,
        rec: &raw::Record,
        default_zone: Option<&str>,
    ) -> Result<DnsRecordConfig, ConfigError> {
        let key = |field: &str| format!("dns.records[{i}].{field}");
        let name = self
            .non_empty(&key("name"), &rec.name)?
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let record_type = rec
            .record_type
            .as_deref()
            .unwrap_or(defaults::DNS_RECORD_TYPE)
            .to_ascii_uppercase();
        let content = self.non_empty(&key("content"), &rec.content)?;
        match record_type.as_str() {
            "A" if content.parse::<Ipv4Addr>().is_err() => {
                return Err(self.error(
                    &key("content"),
                    format!("{content:?} is not an IPv4 address (type A)"),
                ));
            }
            "AAAA" if content.parse::<Ipv6Addr>().is_err() => {
                return Err(self.error(
                    &key("content"),
                    format!("{content:?} is not an IPv6 address (type AAAA)"),
                ));
            }
            "CNAME" => {
                if let Some(problem) = host_name_problem(&content) {
                    return Err(self.error(
                        &key("content"),
                        format!(
                            "{content:?} {problem} (type CNAME points to a host name; for an address use type A or AAAA)"
                        ),
                    ));
                }
                if content.trim_end_matches('.').eq_ignore_ascii_case(&name) {
                    return Err(self.error(
                        &key("content"),
                        format!("{content:?} is the record's own name (type CNAME)"),
                    ));
                }
            }
            "A" | "AAAA" => {}
            other => {
                return Err(self.error(
                    &key("type"),
                    format!("{other:?} is not supported; use A, AAAA or CNAME"),
                ));
            }
        }
        let zone_id = match (&rec.zone_id, default_zone) {
            (Some(z), _) => self.non_empty(&key("zone_id"), z)?,
            (None, Some(z)) => z.to_string(),
            (None, None) => {
                return Err(self.error(
                    &key("zone_id"),
                    "no zone: set dns.zone_id or this record's zone_id",
                ));
            }
        };
        Ok(DnsRecordConfig {
            name,
            record_type,
            content,
            zone_id,
        })
    }

    /// `[telegram]`; without it (and without webhooks) alerts go to the log only, which
    /// [`Self::webhooks`] warns of.
    pub(super) fn telegram(
        &mut self,
        raw: Option<&raw::Telegram>,
    ) -> Result<Option<TelegramConfig>, ConfigError> {
        let Some(t) = raw else {
            return Ok(None);
        };
        Ok(Some(TelegramConfig {
            bot_token: self.secret(
                "telegram.bot_token",
                t.bot_token.as_deref(),
                t.bot_token_file.as_deref(),
            )?,
            chat_id: self.chat_id(&t.chat_id)?,
            api_url: self.url(
                "telegram.api_url",
                t.api_url.as_deref().unwrap_or(defaults::TELEGRAM_API_URL),
            )?,
        }))
    }

    /// `[[alerts.webhooks]]`. Names are unique (they name the channel in logs and
    /// counts); `pagerduty` needs its routing key in `token_file`. With neither Telegram
    /// nor a webhook, alerts go to the log only, which draws a warning.
    pub(super) fn webhooks(
        &mut self,
        raw: &raw::Alerts,
        has_telegram: bool,
    ) -> Result<Vec<WebhookConfig>, ConfigError> {
        if !has_telegram && raw.webhooks.is_empty() {
            self.warn("no [telegram] table: alerts go to the log only");
        }
        let mut webhooks: Vec<WebhookConfig> = Vec::new();
        for (i, w) in raw.webhooks.iter().enumerate() {
            let key = |k: &str| format!("alerts.webhooks[{i}].{k}");
            let format = match w.format.trim() {
                "json" => WebhookFormat::Json,
                "slack" => WebhookFormat::Slack,
                "alertmanager" => WebhookFormat::Alertmanager,
                "pagerduty" => WebhookFormat::Pagerduty,
                other => {
                    return Err(self.error(
                        &key("format"),
                        format!(
                            "{other:?} is not a format: use json, slack, alertmanager or pagerduty"
                        ),
                    ));
                }
            };
            let url = match (w.url.as_deref(), format) {
                (Some(url), _) => self.url(&key("url"), url)?,
                (None, WebhookFormat::Pagerduty) => {
                    self.url(&key("url"), defaults::PAGERDUTY_EVENTS_URL)?
                }
                (None, _) => return Err(self.error(&key("url"), "missing")),
            };
            let token = match w.token_file.as_deref() {
                Some(path) => Some(self.secret(&key("token"), None, Some(path))?),
                None if format == WebhookFormat::Pagerduty => {
                    return Err(self.error(
                        &key("token_file"),
                        "missing: a pagerduty webhook needs its routing key in token_file",
                    ));
                }
                None => None,
            };
            let name = match w.name.as_deref() {
                Some(name) => self.non_empty(&key("name"), name)?,
                None => url.host_str().unwrap_or_default().to_string(),
            };
            if name == "telegram" || name == "log" {
                return Err(self.error(
                    &key("name"),
                    format!("{name:?} is taken by a built-in channel; give another name"),
                ));
            }
            if webhooks.iter().any(|other| other.name == name) {
                return Err(self.error(
                    &key("name"),
                    format!("{name:?} names another webhook too; give each a unique name"),
                ));
            }
            let timeout = match w.timeout.as_deref() {
                Some(text) => self.duration(&key("timeout"), text)?,
                None => defaults::WEBHOOK_TIMEOUT,
            };
            webhooks.push(WebhookConfig {
                name,
                url,
                format,
                token,
                timeout,
            });
        }
        Ok(webhooks)
    }

    /// `telegram.chat_id`: a number, written as one or as text, or an `@channel` name.
    fn chat_id(&self, raw: &raw::ChatId) -> Result<String, ConfigError> {
        match raw {
            raw::ChatId::Number(n) => Ok(n.to_string()),
            raw::ChatId::Text(s) => {
                let s = self.non_empty("telegram.chat_id", s)?;
                if s.parse::<i64>().is_err() && !s.starts_with('@') {
                    return Err(self.error(
                        "telegram.chat_id",
                        format!("{s:?} is neither a numeric chat id nor an @channel name"),
                    ));
                }
                Ok(s)
            }
        }
    }

    /// `[promotion]`. `require_fence` needs something to fence with: a fence command, or
    /// a `mysql` check among the primary's `checks` (its account fences the database).
    pub(super) fn promotion(
        &self,
        p: &raw::Promotion,
        checks: &[CheckConfig],
    ) -> Result<PromotionConfig, ConfigError> {
        let command = |key: &str, value: &Option<String>| -> Result<Option<String>, ConfigError> {
            value.as_deref().map(|c| self.non_empty(key, c)).transpose()
        };
        let promotion = PromotionConfig {
            fence_command: command("promotion.fence_command", &p.fence_command)?,
            fence_timeout: self.duration_or(
                "promotion.fence_timeout",
                p.fence_timeout.as_deref(),
                defaults::FENCE_TIMEOUT,
            )?,
            require_fence: p.require_fence.unwrap_or(defaults::REQUIRE_FENCE),
            pre_promote: command("promotion.pre_promote", &p.pre_promote)?,
            post_promote: command("promotion.post_promote", &p.post_promote)?,
            on_failure: command("promotion.on_failure", &p.on_failure)?,
            hook_timeout: self.duration_or(
                "promotion.hook_timeout",
                p.hook_timeout.as_deref(),
                defaults::HOOK_TIMEOUT,
            )?,
            split_brain_alert_every: self.duration_or(
                "promotion.split_brain_alert_every",
                p.split_brain_alert_every.as_deref(),
                defaults::SPLIT_BRAIN_ALERT_EVERY,
            )?,
        };
        let has_mysql_check = checks
            .iter()
            .any(|c| matches!(c, CheckConfig::Mysql { .. }));
        if promotion.require_fence && promotion.fence_command.is_none() && !has_mysql_check {
            return Err(self.error(
                "promotion.require_fence",
                "needs a fence_command or a mysql check (its account fences the old primary's database)",
            ));
        }
        Ok(promotion)
    }

    /// `[smoke]`. Nothing in it is required: a check left unconfigured is skipped. Its
    /// lag limit defaults to the lag guard's, `replica_max_lag`.
    pub(super) fn smoke(
        &self,
        raw: &raw::Smoke,
        replica_max_lag: Duration,
    ) -> Result<SmokeConfig, ConfigError> {
        let mut sync_units = Vec::new();
        for (i, unit) in raw.sync_units.iter().enumerate() {
            sync_units.push(self.unit_name(&format!("smoke.sync_units[{i}]"), unit)?);
        }
        let mut build_paths = Vec::new();
        for (i, path) in raw.build_paths.iter().enumerate() {
            let path = self.non_empty(&format!("smoke.build_paths[{i}]"), path)?;
            build_paths.push(self.resolve(&path));
        }
        let trial_boot = match &raw.trial_boot {
            None => None,
            Some(argv) if argv.first().is_none_or(|program| program.trim().is_empty()) => {
                return Err(self.error(
                    "smoke.trial_boot",
                    "must name a program and its arguments, e.g. [\"/usr/bin/php\", \"artisan\", \"about\"]",
                ));
            }
            Some(argv) => Some(argv.clone()),
        };
        let mut urls = Vec::new();
        for (i, url) in raw.urls.iter().enumerate() {
            urls.push(self.url(&format!("smoke.urls[{i}]"), url)?);
        }
        Ok(SmokeConfig {
            check_timeout: self.duration_or(
                "smoke.check_timeout",
                raw.check_timeout.as_deref(),
                defaults::SMOKE_CHECK_TIMEOUT,
            )?,
            max_lag: self
                .optional_duration("smoke.max_lag", raw.max_lag.as_deref())?
                .unwrap_or_else(|| defaults::smoke_max_lag(replica_max_lag)),
            sync_units,
            build_paths,
            build_max_age: self
                .optional_duration("smoke.build_max_age", raw.build_max_age.as_deref())?,
            trial_boot,
            trial_boot_timeout: self.duration_or(
                "smoke.trial_boot_timeout",
                raw.trial_boot_timeout.as_deref(),
                defaults::SMOKE_TRIAL_BOOT_TIMEOUT,
            )?,
            urls,
        })
    }

    /// `[metrics]` (the standby's and the witness's): no table, no listener.
    pub(super) fn metrics(
        &mut self,
        raw: Option<&raw::Metrics>,
    ) -> Result<Option<MetricsConfig>, ConfigError> {
        let Some(m) = raw else {
            return Ok(None);
        };
        let listen = self.listen_address("metrics.listen", &m.listen)?;
        let token = match (&m.token, &m.token_file) {
            (None, None) => None,
            (inline, file) => {
                Some(self.secret("metrics.token", inline.as_deref(), file.as_deref())?)
            }
        };
        Ok(Some(MetricsConfig {
            listen,
            token,
            tls: self.tls_files(
                "metrics",
                m.tls_cert_file.as_deref(),
                m.tls_key_file.as_deref(),
            )?,
            max_connections_per_client: self.count(
                "metrics.max_connections_per_client",
                m.max_connections_per_client,
                defaults::METRICS_MAX_CONNECTIONS_PER_CLIENT,
            )?,
            write_timeout: self.duration_or(
                "metrics.write_timeout",
                m.write_timeout.as_deref(),
                defaults::WRITE_TIMEOUT,
            )?,
        }))
    }
}
