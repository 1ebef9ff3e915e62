//! How the host shows what the plugin reports: the licence check and the
//! prerequisite list, failed rows in red, as the original did.

use crate::plugin::{LicenceView, PrerequisitesView, RowState};
use console::style;
use std::fmt::Write as _;

/// The licence check, rule by rule, then the agreement and modules.
pub fn licence(view: &LicenceView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", style("Licence").bold());
    for rule in &view.rules {
        let _ = writeln!(
            out,
            "  {} {}",
            mark(rule.passed),
            paint(rule.passed, &rule.title)
        );
        if !rule.passed {
            let _ = writeln!(out, "      {}", rule.detail);
        }
    }
    if let Some(number) = &view.licence_number {
        let _ = writeln!(
            out,
            "  Licence {number} for {} (contact {}, phone {})",
            view.licensee_name.as_deref().unwrap_or("-"),
            view.contact_person.as_deref().unwrap_or("-"),
            view.phone.as_deref().unwrap_or("-"),
        );
    }
    match (&view.tier, &view.valid_until) {
        (Some(tier), Some(until)) => {
            let _ = writeln!(
                out,
                "  Service agreement: {}, valid until {until}; {} online users",
                tier_name(tier),
                view.online_users
            );
        }
        _ => {
            let _ = writeln!(out, "  Service agreement: none");
        }
    }
    if view.ok {
        let titles: Vec<&str> = view
            .modules
            .iter()
            .map(|(_, title)| title.as_str())
            .collect();
        let _ = writeln!(out, "  Online modules: {}", titles.join(", "));
    }
    out
}

/// The name people know a service-agreement tier by ("Standard"), from the
/// id the plugin reports ("standard"); an unknown id is shown as it is.
pub fn tier_name(id: &str) -> &str {
    id.parse::<od_licence::Tier>()
        .map_or(id, |tier| tier.name())
}

/// The prerequisite rows: passed in green, failed in red with what to do and
/// where, warnings in yellow, checks still running marked as such.
pub fn prerequisites(view: &PrerequisitesView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", style("Requirements for connecting").bold());
    for row in &view.rows {
        let (symbol, title) = match (row.state, row.blocking) {
            (RowState::Passed, _) => (
                style("✔").green().to_string(),
                style(&row.title).green().to_string(),
            ),
            (RowState::Pending, _) => (
                style("…").cyan().to_string(),
                style(&row.title).cyan().to_string(),
            ),
            (RowState::Failed, true) => (
                style("✘").red().bold().to_string(),
                style(&row.title).red().bold().to_string(),
            ),
            (RowState::Failed, false) => (
                style("!").yellow().bold().to_string(),
                style(&row.title).yellow().to_string(),
            ),
        };
        let _ = writeln!(out, "  {symbol} {title}");
        match row.state {
            RowState::Passed => {}
            RowState::Pending => {
                let _ = writeln!(out, "      {}", row.detail);
            }
            RowState::Failed => {
                let _ = writeln!(out, "      {}", row.detail);
                let _ = writeln!(out, "      Fix it in: {}", row.fix_location);
            }
        }
    }
    out
}

/// One closing sentence: may the user go on?
pub fn verdict(view: &PrerequisitesView) -> String {
    let failed = view
        .rows
        .iter()
        .filter(|r| r.blocking && r.state == RowState::Failed)
        .count();
    if view.can_connect {
        let warnings = view
            .rows
            .iter()
            .filter(|r| !r.blocking && r.state == RowState::Failed)
            .count();
        let mut text = style("All requirements are met: Connect is available.")
            .green()
            .bold()
            .to_string();
        if warnings > 0 {
            text.push_str(
                " The warnings above must be resolved before the first synchronisation starts.",
            );
        }
        text
    } else if view.pending && failed == 0 {
        style("Some checks are still running; check again in a moment.")
            .cyan()
            .to_string()
    } else {
        style(format!(
            "Connect is not available: {failed} requirement{} not met. Fix the red items and check again.",
            if failed == 1 { " is" } else { "s are" }
        ))
        .red()
        .bold()
        .to_string()
    }
}

fn mark(passed: bool) -> String {
    if passed {
        style("✔").green().to_string()
    } else {
        style("✘").red().bold().to_string()
    }
}

fn paint(passed: bool, text: &str) -> String {
    if passed {
        style(text).green().to_string()
    } else {
        style(text).red().bold().to_string()
    }
}
