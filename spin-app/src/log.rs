//! The component's log lines, on stderr, which Spin collects per component.
//! Never pass keys, tokens, OAuth codes or user ids here.

/// Writes one line.
#[allow(
    clippy::print_stderr,
    reason = "stderr is the component's log under Spin"
)]
pub fn line(args: std::fmt::Arguments<'_>) {
    eprintln!("dock: {args}");
}

/// `log!("...", args)` → one line on stderr.
macro_rules! log {
    ($($t:tt)*) => { $crate::log::line(format_args!($($t)*)) };
}
pub(crate) use log;

/// Writes one structured record (a JSON object) as a line on stdout.
#[allow(
    clippy::print_stdout,
    reason = "stdout is the component's log under Spin"
)]
pub fn record(value: &serde_json::Value) {
    println!("{value}");
}
