//! The results table: one line per goal, printed and written with the machine's details
//! (nproc, CPU model, memory, rustc, date) so a number is never read without its context.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// Whether a measured line meets its goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    /// Context only, no goal.
    Info,
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Line {
    pub row: &'static str,
    pub measure: String,
    pub result: String,
    pub ratio: String,
    pub goal: String,
    pub verdict: Verdict,
}

impl Line {
    pub fn new(row: &'static str, measure: impl Into<String>) -> Self {
        Line {
            row,
            measure: measure.into(),
            result: String::new(),
            ratio: "–".into(),
            goal: "–".into(),
            verdict: Verdict::Info,
        }
    }

    pub fn result(mut self, result: impl Into<String>) -> Self {
        self.result = result.into();
        self
    }

    /// A ratio against a goal that is met when `met` holds.
    pub fn against(mut self, ratio: impl Into<String>, goal: impl Into<String>, met: bool) -> Self {
        self.ratio = ratio.into();
        self.goal = goal.into();
        self.verdict = if met { Verdict::Met } else { Verdict::Missed };
        self
    }
}

pub fn table(lines: &[Line]) -> String {
    let mut out =
        String::from("| # | measure | result | ratio | goal | met |\n|---|---|---|---|---|---|\n");
    for line in lines {
        let verdict = match line.verdict {
            Verdict::Met => "yes",
            Verdict::Missed => "**MISSED**",
            Verdict::Info => "",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            line.row, line.measure, line.result, line.ratio, line.goal, verdict
        );
    }
    out
}

fn run(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn proc_field(file: &str, key: &str) -> String {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// nproc, CPU model, memory, rustc version, date: one line each.
pub fn machine() -> String {
    format!(
        "- date: {}\n- nproc: {}\n- CPU: {}\n- memory: {}\n- rustc: {}\n- kernel: {}\n",
        run("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]),
        // Counted from /proc: `available_parallelism` would say 1 once this process is pinned.
        std::fs::read_to_string("/proc/cpuinfo")
            .map(|text| text.lines().filter(|l| l.starts_with("processor")).count())
            .unwrap_or(0),
        proc_field("/proc/cpuinfo", "model name"),
        proc_field("/proc/meminfo", "MemTotal"),
        run("rustc", &["--version"]),
        run("uname", &["-r"]),
    )
}

/// Everything from this line on in an existing report is hand-written analysis (profiles,
/// why a goal is missed) and is kept when the report is written again.
pub const KEPT_NOTES_MARKER: &str =
    "<!-- hand-written notes below are kept when the bench rewrites this file -->";

/// Writes the report (`header`, machine, table, notes) to `path`, keeping the hand-written
/// notes after [`KEPT_NOTES_MARKER`] of the file already there.
pub fn write(path: &Path, header: &str, lines: &[Line], notes: &str) -> std::io::Result<()> {
    let kept = std::fs::read_to_string(path)
        .ok()
        .and_then(|old| old.find(KEPT_NOTES_MARKER).map(|at| old[at..].to_string()))
        .unwrap_or_default();
    let text = format!(
        "{header}\n\n## Machine\n\n{}\n## Results\n\n{}\n{notes}\n{kept}",
        machine(),
        table(lines)
    );
    std::fs::write(path, text)
}
