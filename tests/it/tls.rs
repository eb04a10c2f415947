//! TLS on the real pair: both servers run with `require_secure_transport = ON` and
//! certificates made at test time, the configs reach every server with
//! `verify_identity` against their CA, and the channel is set up verified. The failover,
//! `rejoin`, `switchover` and the whole cycle work so; a wrong CA is refused naming the
//! server and the problem; a primary that fails TLS is alive, not promoted over.

use std::time::Duration;

use failover_watchdog::config::{PemFile, TlsConfig, TlsMode};
use failover_watchdog::secret::Secret;
use failover_watchdog_rig::mariadb::{self, MariaDb, StartOptions, Tls};
use failover_watchdog_rig::writer::{self, Writer};
use mysql_async::prelude::Queryable;

use crate::support::*;

/// A TLS stage whose standby's config has `[peer]`: a mirrored pair.
async fn tls_pair() -> Stage {
    let rig = Stage::start_tls(std::path::Path::new(BIN)).await;
    rig.write_config(&rig.pair_config());
    rig
}

/// The channel of `server` as the watchdog's `[replication]` of a TLS stage declares it:
/// encrypted, verified (name included) against the CA, a heartbeat each second, both
/// threads running from `source_port`.
async fn channel_is_verified_tls(server: &MariaDb, source_port: u16) {
    let status = server
        .slave_status()
        .await
        .unwrap()
        .expect("a replication connection");
    let expect = [
        ("Master_Port", source_port.to_string()),
        ("Slave_IO_Running", "Yes".to_string()),
        ("Slave_SQL_Running", "Yes".to_string()),
        ("Master_SSL_Allowed", "Yes".to_string()),
        ("Master_SSL_Verify_Server_Cert", "Yes".to_string()),
        ("Slave_heartbeat_period", "1.000".to_string()),
        ("Connect_Retry", "1".to_string()),
    ];
    for (column, value) in expect {
        assert_eq!(
            status[column],
            value,
            "{column} on {}: {status:?}",
            server.name()
        );
    }
    assert!(
        status["Master_SSL_CA_File"].ends_with("ca.pem"),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn over_tls_the_daemon_promotes_when_the_primary_dies() {
    let mut rig = Stage::start_tls(std::path::Path::new(BIN)).await;
    let daemon = rig.spawn_daemon();
    let status = rig
        .wait_for_status("a healthy round over TLS", Duration::from_secs(30), |s| {
            s["last_probe"]["ok"] == true && s["state"] == "monitoring"
        })
        .await;
    let mysql = &status["last_probe"]["checks"][1];
    assert_eq!(mysql["type"], "mysql");
    assert_eq!(mysql["detail"], "SELECT 1 answered", "{status:#}");
    assert!(
        mysql["gtid_binlog_pos"].is_string(),
        "the primary's position is read over TLS: {status:#}"
    );

    rig.db.primary.kill9();
    let status = rig
        .wait_for_status("the promotion", Duration::from_secs(60), |s| {
            s["state"] == "promoted"
        })
        .await;
    assert_eq!(steps(&status), all_steps("done"), "{status:#}");
    assert!(rig.dns_points_at_standby());
    assert_eq!(rig.replica_read_only().await, "0");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn over_tls_rejoin_and_switchover_set_up_verified_encrypted_channels() {
    let mut rig = tls_pair().await;
    let promoted = rig.run(&["--promote-now", "--yes"]).await;
    assert_eq!(promoted.code, Some(0), "{promoted:?}");
    rig.db.primary.kill9();
    rig.db.primary.start_again_as_replica().await.unwrap();
    let host = rig.primary_host();

    let rejoin = host.run(&["rejoin", "--yes"]).await;
    assert_eq!(rejoin.code, Some(0), "rejoin: {rejoin:?}");
    channel_is_verified_tls(&rig.db.primary, rig.db.replica.port()).await;

    let switchover = host.run(&["switchover", "--yes"]).await;
    assert_eq!(switchover.code, Some(0), "switchover: {switchover:?}");
    assert_eq!(rig.db.primary.global_var("read_only").await.unwrap(), "0");
    assert_eq!(rig.replica_read_only().await, "1");
    channel_is_verified_tls(&rig.db.replica, rig.db.primary.port()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn over_tls_a_whole_cycle_ends_in_the_original_roles_with_every_acknowledged_write() {
    let mut rig = tls_pair().await;
    let host = rig.primary_host();
    let standby = rig.spawn_daemon();
    let primary = host.spawn_daemon();
    rig.wait_for_status("the standby's role", Duration::from_secs(30), |s| {
        s["role"] == "standby" && s["state"] == "monitoring"
    })
    .await;
    wait_for_host_status(&host, "the primary's role", |s| s["role"] == "primary").await;
    let writer = Writer::start([&rig.db.primary, &rig.db.replica], 1);
    writer
        .wait_for_acks(100, Duration::from_secs(30))
        .await
        .unwrap();

    rig.db.primary.kill9();
    rig.wait_for_status("the automatic promotion", Duration::from_secs(60), |s| {
        s["state"] == "promoted" && s["role"] == "primary"
    })
    .await;
    let before = writer.acked();
    writer
        .wait_for_acks(before + 100, Duration::from_secs(30))
        .await
        .expect("writes go on, over TLS, to the promoted standby");

    rig.db.primary.start_again_as_replica().await.unwrap();
    let rejoin = host.run(&["rejoin", "--yes"]).await;
    assert_eq!(rejoin.code, Some(0), "rejoin: {rejoin:?}");
    let switchover = host.run(&["switchover", "--yes"]).await;
    assert_eq!(switchover.code, Some(0), "switchover: {switchover:?}");
    let before = writer.acked();
    writer
        .wait_for_acks(before + 100, Duration::from_secs(30))
        .await
        .expect("writes go on, to the original primary");
    rig.wait_for_status("the standby re-armed", Duration::from_secs(60), |s| {
        s["role"] == "standby" && s["state"] == "monitoring" && s["promotion"].is_null()
    })
    .await;
    assert!(rig.dns(&rig.records.app) == OLD_PRIMARY_ADDRESS);
    channel_is_verified_tls(&rig.db.replica, rig.db.primary.port()).await;

    let acks = writer.stop().await;
    let lost = writer::missing_on(&acks, &rig.db.primary).await.unwrap();
    assert!(lost.is_empty(), "{} acknowledged writes lost", lost.len());
    let _ = (standby.stop().await, primary.stop().await);
}

/// Every TLS key of the stage's config pointed at a CA that signed nothing here.
fn with_wrong_ca(rig: &Stage, config: &str) -> String {
    Tls::write_unrelated_ca(&rig.dir.path().join("wrong-ca.pem")).unwrap();
    config.replace(
        &format!("tls_ca_file = \"{CA_FILE}\""),
        "tls_ca_file = \"wrong-ca.pem\"",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_ca_is_refused_naming_the_server_and_the_problem() {
    let rig = tls_pair().await;
    rig.write_config(&with_wrong_ca(&rig, &rig.pair_config()));
    let replica = format!("{}:{}", mariadb::HOST, rig.db.replica.port());
    let primary = format!("{}:{}", mariadb::HOST, rig.db.primary.port());

    let plan = rig.run(&["--promote-now", "--dry-run"]).await;
    assert_eq!(plan.code, Some(1), "{plan:?}");
    let said = format!("{}{}", plan.stdout, plan.stderr);
    assert!(
        said.contains(&format!("TLS with {replica} failed: unknown CA"))
            && said.contains("wrong-ca.pem"),
        "{said}"
    );

    let (code, report) = smoke_json(&rig).await;
    assert_eq!(code, Some(1));
    let replication = smoke_check(&report, "replication");
    assert_eq!(replication["result"], "fail", "{report:#}");
    let detail = replication["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("TLS with {replica} failed: unknown CA")),
        "{detail}"
    );
    let plan = smoke_check(&report, "promotion_plan");
    assert_eq!(plan["result"], "fail", "{report:#}");
    let detail = plan["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("TLS with {primary} failed: unknown CA")),
        "the old primary's database, which the fence reaches: {detail}"
    );

    // Nothing was changed by any of it.
    assert_eq!(rig.db.primary.global_var("read_only").await.unwrap(), "0");
    assert_eq!(rig.replica_read_only().await, "1");
}

async fn smoke_json(rig: &Stage) -> (Option<i32>, serde_json::Value) {
    let run = rig.run(&["smoke-test", "--json", "--no-notify"]).await;
    let report = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("smoke-test --json is not JSON ({e}): {run:?}"));
    (run.code, report)
}

fn smoke_check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {report:#}"))
}

/// A CA file that no longer matches after an upgrade must not promote over a live
/// primary: its `mysql` check answers "TLS FAILED, counted alive", the round is
/// healthy; and once the primary really dies, that check fails and the standby takes
/// over as ever.
#[tokio::test(flavor = "multi_thread")]
async fn a_primary_that_fails_tls_is_alive_and_still_promoted_over_once_dead() {
    let mut rig = Stage::start_tls(std::path::Path::new(BIN)).await;
    let wrong_checks = with_wrong_ca(&rig, &rig.primary_checks());
    rig.write_config(&rig.config_with_checks(&wrong_checks));
    let daemon = rig.spawn_daemon();
    let status = rig
        .wait_for_status("a round", Duration::from_secs(30), |s| {
            s["last_probe"]["checks"].is_array()
        })
        .await;
    let status = five_more_rounds(&rig, &status).await;
    assert_eq!(status["state"], "monitoring", "{status:#}");
    assert_eq!(status["consecutive_failures"], 0, "{status:#}");
    let mysql = &status["last_probe"]["checks"][1];
    assert_eq!(mysql["ok"], true, "{status:#}");
    let detail = mysql["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("TLS FAILED, counted alive") && detail.contains("unknown CA"),
        "{detail}"
    );

    rig.db.primary.kill9();
    let status = rig
        .wait_for_status("the promotion", Duration::from_secs(60), |s| {
            s["state"] == "promoted"
        })
        .await;
    assert_eq!(steps(&status), all_steps("done"), "{status:#}");
    let log = daemon.stop().await.1;
    assert!(
        log.contains("unknown CA"),
        "the TLS problem is logged:\n{log}"
    );
}

/// One server requiring TLS, its certificate naming only `db.example`, reached at
/// 127.0.0.1; and its CA as the config would hold it.
async fn server_named_otherwise() -> (MariaDb, TlsConfig) {
    let tls = std::sync::Arc::new(Tls::generate(&["db.example"]).unwrap());
    let ca = PemFile {
        path: tls.ca_path(),
        pem: std::fs::read(tls.ca_path()).unwrap().into(),
    };
    let server = MariaDb::start_with(
        "named-otherwise",
        7,
        false,
        StartOptions {
            tls: Some(tls),
            ..StartOptions::default()
        },
    )
    .await
    .unwrap();
    let config = TlsConfig {
        mode: TlsMode::VerifyIdentity,
        ca: Some(ca),
        client: None,
    };
    (server, config)
}

async fn connect(server: &MariaDb, tls: &TlsConfig) -> Result<mysql_async::Conn, String> {
    failover_watchdog::mariadb::connect::connect(
        server.host(),
        server.port(),
        mariadb::WATCHDOG_USER,
        &Secret::inline(mariadb::WATCHDOG_PASSWORD),
        tls,
    )
    .await
    .map_err(|e| e.to_string())
}

/// `verify_ca` checks the chain and not the name, `verify_identity` both; `required`
/// checks nothing; `disabled` is refused by a server that requires TLS.
#[tokio::test(flavor = "multi_thread")]
async fn each_tls_mode_verifies_what_it_says_against_a_real_server() {
    let (server, identity) = server_named_otherwise().await;
    let error = connect(&server, &identity).await.unwrap_err();
    assert!(
        error.contains(&format!(
            "TLS with 127.0.0.1:{} failed: name mismatch",
            server.port()
        )) && error.contains("db.example"),
        "{error}"
    );
    let verify_ca = TlsConfig {
        mode: TlsMode::VerifyCa,
        ..identity.clone()
    };
    let mut conn = connect(&server, &verify_ca)
        .await
        .expect("verify_ca ignores the name");
    let version: Option<(String, String)> = conn
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_version'")
        .await
        .unwrap();
    assert_eq!(
        version.map(|(_, v)| v).as_deref(),
        Some("TLSv1.3"),
        "the session is encrypted, with TLS 1.3"
    );
    let _ = conn.disconnect().await;

    // verify_ca still checks the chain.
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong.pem");
    Tls::write_unrelated_ca(&wrong).unwrap();
    let wrong_ca = TlsConfig {
        ca: Some(PemFile {
            pem: std::fs::read(&wrong).unwrap().into(),
            path: wrong,
        }),
        ..verify_ca.clone()
    };
    let error = connect(&server, &wrong_ca).await.unwrap_err();
    assert!(error.contains("unknown CA"), "{error}");

    let required = TlsConfig {
        mode: TlsMode::Required,
        ca: None,
        client: None,
    };
    connect(&server, &required)
        .await
        .expect("required encrypts without checking");
    let error = connect(&server, &TlsConfig::DISABLED).await.unwrap_err();
    assert!(error.contains("require_secure_transport"), "{error}");

    // A server without TLS at all, for a config that wants it.
    let plain = MariaDb::start("plain", 8, false).await.unwrap();
    let error = connect(&plain, &identity).await.unwrap_err();
    assert!(
        error.contains(&format!("TLS with 127.0.0.1:{} failed", plain.port()))
            && error.contains("does not offer TLS"),
        "{error}"
    );
}

/// An account created `REQUIRE X509` is reached with the client certificate of the TLS
/// keys, and refused without it.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_certificate_reaches_an_account_that_requires_one() {
    let rig = Stage::start_tls(std::path::Path::new(BIN)).await;
    let tls = rig.tls.clone().unwrap();
    rig.db
        .primary
        .execute("CREATE USER 'x509'@'%' IDENTIFIED BY 'x509-pw' REQUIRE X509")
        .await
        .unwrap();
    let pem = |path: std::path::PathBuf| PemFile {
        pem: std::fs::read(&path).unwrap().into(),
        path,
    };
    let mut config = TlsConfig {
        mode: TlsMode::VerifyIdentity,
        ca: Some(pem(tls.ca_path())),
        client: None,
    };
    let reach = |config: TlsConfig| {
        let primary = &rig.db.primary;
        async move {
            failover_watchdog::mariadb::connect::connect(
                primary.host(),
                primary.port(),
                "x509",
                &Secret::inline("x509-pw"),
                &config,
            )
            .await
        }
    };
    let refused = reach(config.clone()).await.unwrap_err();
    assert!(refused.to_string().contains("Access denied"), "{refused}");
    // The key as the config loader keeps it: unwrapped for the MariaDB client.
    let key = pem(tls.client_key_path());
    let key = PemFile {
        pem: failover_watchdog::config::tls::client_key_for_driver(&key.pem)
            .unwrap()
            .into(),
        ..key
    };
    config.client = Some(failover_watchdog::config::ClientCertificate {
        cert: pem(tls.client_cert_path()),
        key,
    });
    let conn = reach(config)
        .await
        .expect("the client certificate is presented");
    let _ = conn.disconnect().await;
}
