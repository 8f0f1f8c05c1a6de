//! Progress bars for operators' long commands (replays, rebuilds, resyncs, backups): drawn on
//! stderr when a person watches, hidden when asked or when nobody does.

/// A bar of `total` steps in `template` (indicatif's syntax), or a hidden one when `!show`.
pub fn bar(total: u64, show: bool, template: &str) -> indicatif::ProgressBar {
    let bar = if show {
        indicatif::ProgressBar::new(total)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}
