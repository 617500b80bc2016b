//! The component's log lines, which Spin collects per component: one JSON
//! object per line, diagnostics on stderr and one record per request on
//! stdout. Never pass keys, tokens, OAuth codes or user ids here.

/// Writes one diagnostic line: `{"log":"dock","message":…}`.
#[allow(
    clippy::print_stderr,
    reason = "stderr is the component's log under Spin"
)]
pub fn line(args: std::fmt::Arguments<'_>) {
    eprintln!(
        "{}",
        serde_json::json!({"log": "dock", "message": args.to_string()})
    );
}

/// `log!("...", args)` → one JSON line on stderr.
macro_rules! log {
    ($($t:tt)*) => { $crate::log::line(format_args!($($t)*)) };
}
pub(crate) use log;

/// Writes one structured record (a JSON object) as a line on stdout.
#[allow(
    clippy::print_stdout,
    reason = "stdout is the component's log under Spin"
)]
pub fn record(value: &impl serde::Serialize) {
    let line = serde_json::to_string(value).unwrap_or_default();
    println!("{line}");
}
