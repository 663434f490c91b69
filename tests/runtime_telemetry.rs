//! `Runtime::start` installs telemetry from `[telemetry]`: the configured log level takes
//! effect, and a second start keeps the subscriber instead of failing. Alone in its binary:
//! the subscriber is global to the process.

mod multicluster_support;

use multicluster_support::Clusters;
use panoptes_runtime::Runtime;

#[actix_rt::test]
async fn start_installs_logging_from_the_config_and_a_second_start_keeps_it() {
    let clusters = Clusters::start(1, 1);
    let mut config = clusters.config(&[("only", "sim-1")]);
    config.telemetry.log = "warn".into();
    assert!(
        !tracing::enabled!(tracing::Level::WARN),
        "no subscriber before the runtime starts"
    );
    let first = Runtime::start(&config).await.expect("the runtime starts");
    assert!(first.installed_telemetry());
    assert!(tracing::enabled!(tracing::Level::WARN), "warn is on");
    assert!(
        !tracing::enabled!(tracing::Level::INFO),
        "info is filtered out"
    );

    config.telemetry.log = "trace".into();
    let second = Runtime::start(&config)
        .await
        .expect("a second start keeps the subscriber");
    assert!(!second.installed_telemetry());
    assert!(
        !tracing::enabled!(tracing::Level::INFO),
        "the first subscriber stays"
    );
    second.shutdown();
    first.shutdown();
}
