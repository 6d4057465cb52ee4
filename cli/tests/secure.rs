//! The `saga` CLI against a SASL_SSL broker, configured the way every binary
//! is: a properties file (`--kafka-properties-file`) for the secrets and
//! `-X KEY=VALUE` flags on top. A wrong password fails at once, with
//! librdkafka's reason and a non-zero exit.

use std::process::{Command, Output};

use testkit::secure::ADMIN_PASSWORD;

fn saga(args: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_saga")).args(args).output()?)
}

#[tokio::test]
async fn topics_and_tail_over_sasl_ssl_and_a_wrong_password_fails_clearly() -> anyhow::Result<()> {
    if testkit::external::skip_unless_containers(
        "topics_and_tail_over_sasl_ssl_and_a_wrong_password_fails_clearly",
    ) {
        return Ok(());
    }
    let broker = testkit::SecureBroker::start().await?;
    let bootstrap = broker.bootstrap_servers().to_owned();
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("client.properties");
    let lines: Vec<String> =
        broker.client_properties("admin", ADMIN_PASSWORD).iter().map(|(k, v)| format!("{k}={v}")).collect();
    std::fs::write(&file, format!("# the admin's settings\n{}\n", lines.join("\n")))?;
    let file = file.to_string_lossy().into_owned();

    let out = saga(&["topics", "--bootstrap-servers", &bootstrap, "--kafka-properties-file", &file])?;
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "saga topics: {}", String::from_utf8_lossy(&out.stderr));
    assert!(printed.contains("created orders.events"), "{printed}");
    assert!(printed.contains("1 broker(s): replication 1"), "{printed}");

    let out = saga(&[
        "tail",
        "orders.events",
        "--bootstrap-servers",
        &bootstrap,
        "--kafka-properties-file",
        &file,
        "--idle-timeout",
        "2",
    ])?;
    assert!(out.status.success(), "saga tail: {}", String::from_utf8_lossy(&out.stderr));

    // A flag wins over the file: the wrong password is the one used.
    let started = std::time::Instant::now();
    let out = saga(&[
        "topics",
        "--bootstrap-servers",
        &bootstrap,
        "--kafka-properties-file",
        &file,
        "-X",
        "sasl.password=wrong",
    ])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a wrong password must fail");
    assert!(
        stderr.contains("refused the connection") && stderr.contains("Authentication failed"),
        "{stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "refused at once, not after a timeout");
    Ok(())
}
