//! Where Kafka is: the broker setting shared by Kafka sources, sinks and commands.

/// Environment variable that overrides the brokers of every Kafka source, sink and command.
pub const BROKERS_ENV: &str = "TICKFLOW_KAFKA_BROKERS";
/// Brokers used when neither the environment nor the configuration names any.
pub const DEFAULT_BROKERS: &str = "127.0.0.1:9092";

/// The brokers to use: `TICKFLOW_KAFKA_BROKERS` when set, else `configured`, else
/// [`DEFAULT_BROKERS`].
pub fn brokers(configured: Option<&str>) -> String {
    match std::env::var(BROKERS_ENV) {
        Ok(b) if !b.trim().is_empty() => b,
        _ => configured.unwrap_or(DEFAULT_BROKERS).to_string(),
    }
}
