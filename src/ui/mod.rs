//! All output: human lines go to stderr, data (`--json`, `hosts-toml`) to
//! stdout. This is the only module that prints; the crate denies print
//! macros everywhere else.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{IsTerminal, Write};

use clap::ValueEnum;

pub mod progress;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// Decide whether to color stderr: `--color` wins, then `NO_COLOR`, then the terminal.
pub fn use_color(choice: ColorChoice, no_color_env: Option<&str>, is_terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => no_color_env.is_none_or(str::is_empty) && is_terminal,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Good,
    Bad,
    Warn,
    Dim,
}

#[derive(Debug, Clone)]
pub struct Ui {
    pub verbose: bool,
    pub quiet: bool,
    pub color: bool,
    /// stderr is a terminal: progress may be drawn in place.
    pub terminal: bool,
}

impl Ui {
    pub fn new(verbose: bool, quiet: bool, color: ColorChoice) -> Self {
        let no_color = std::env::var("NO_COLOR").ok();
        let terminal = std::io::stderr().is_terminal();
        Ui {
            verbose,
            quiet,
            color: use_color(color, no_color.as_deref(), terminal),
            terminal,
        }
    }

    #[cfg(test)]
    pub fn plain_for_tests() -> Self {
        Ui {
            verbose: false,
            quiet: true,
            color: false,
            terminal: false,
        }
    }

    /// Whether to draw progress bars and spinners: on a terminal, not with -q.
    pub fn live_progress(&self) -> bool {
        self.terminal && !self.quiet
    }

    /// A spinner with `message` while something long runs; hidden when
    /// progress is not drawn. Finish it with `finish_and_clear`.
    pub fn spinner(&self, message: &str) -> indicatif::ProgressBar {
        if !self.live_progress() {
            return indicatif::ProgressBar::hidden();
        }
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .expect("valid template"),
        );
        bar.set_message(message.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        bar
    }

    pub fn paint(&self, tone: Tone, text: &str) -> String {
        if !self.color {
            return text.to_string();
        }
        let code = match tone {
            Tone::Good => "32",
            Tone::Bad => "31",
            Tone::Warn => "33",
            Tone::Dim => "2",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }

    /// A command about to run, shown at `-v`.
    pub fn trace(&self, command_line: &str) {
        if self.verbose {
            eprintln!("{}", self.paint(Tone::Dim, &format!("+ {command_line}")));
        }
    }

    /// A detail shown at `-v` only (e.g. the full path of a tool).
    pub fn detail(&self, message: &str) {
        if self.verbose {
            eprintln!("{message}");
        }
    }

    /// A mutation that `--dry-run` did not run. Shown even with `-q`: it is the
    /// whole point of a dry run.
    pub fn dry_run(&self, command_line: &str) {
        eprintln!("would run: {command_line}");
    }

    /// A progress or result line for people.
    pub fn info(&self, message: &str) {
        if !self.quiet {
            eprintln!("{message}");
        }
    }

    pub fn warn(&self, message: &str) {
        eprintln!("{} {message}", self.paint(Tone::Warn, "warning:"));
    }

    /// A block for people that the command shows whatever `-q` says (a
    /// table the user asked for, failed checks); the caller decides.
    pub fn human(&self, text: &str) {
        eprintln!("{text}");
    }

    /// A finished command's verdict when it is not success ("2 of 5 checks
    /// failed"): shown even with `-q`, like an error, though it is an outcome.
    pub fn verdict(&self, message: &str) {
        eprintln!("{} {message}", self.paint(Tone::Bad, "error:"));
    }

    /// An error with its causes and the hint, as `main` reports it.
    pub fn error_chain(&self, message: &str, causes: &[String], hint: Option<&str>) {
        eprintln!("{} {message}", self.paint(Tone::Bad, "error:"));
        if !causes.is_empty() {
            eprintln!("\nCaused by:");
            for cause in causes {
                eprintln!("    {}", cause.replace('\n', "\n    "));
            }
        }
        if let Some(hint) = hint {
            eprintln!("{} {hint}", self.paint(Tone::Warn, "hint:"));
        }
    }

    /// One line of data on stdout.
    pub fn data(&self, line: &str) {
        write_stdout(&format!("{line}\n"));
    }

    /// Data on stdout as it is (the caller ends its lines).
    pub fn data_raw(&self, text: &str) {
        write_stdout(text);
    }
}

/// Write to stdout; a reader that went away (`drcache status --json | head`)
/// ends the program quietly, as a pipe's writer should.
fn write_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let result = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    if let Err(e) = result {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// Bytes for people: `512 B`, `2.0 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A duration for people, two units at most: `45s`, `3m05s`, `2h10m`, `4d03h`.
pub fn human_duration(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// Visible width of a cell: ANSI color codes take no room.
fn visible_width(cell: &str) -> usize {
    let mut width = 0;
    let mut in_escape = false;
    for c in cell.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => width += 1,
        }
    }
    width
}

/// `text` with control characters written as escapes (`\u{1b}`), so that
/// a name from another tool cannot move the cursor, recolor or hide lines.
/// drcache's own color codes are added after this, never passed through it.
pub fn escape_control(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| match c {
            '\t' => "\\t".to_string(),
            '\n' => "\\n".to_string(),
            '\r' => "\\r".to_string(),
            c if c.is_control() => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// A name from another tool (a minikube profile or node) as it appears in
/// a command line drcache suggests: shell-quoted where it needs it, its
/// control characters escaped.
pub fn quoted_name(name: &str) -> String {
    escape_control(&crate::exec::shell_quote(name))
}

/// Lay rows out in aligned columns (the last column is not padded).
/// Control characters in cells are escaped; color codes drcache added
/// (ESC `[` ... `m`) are kept.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| escape_cell(cell)).collect())
        .collect();
    let rows = &rows;
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(visible_width(cell));
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(widths[i] - visible_width(cell) + 2));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Escape control characters in a cell except drcache's own SGR color
/// sequences (ESC `[` digits and `;` then `m`).
fn escape_cell(cell: &str) -> String {
    let mut out = String::new();
    let mut rest = cell;
    while let Some(i) = rest.find('\u{1b}') {
        out.push_str(&escape_control(&rest[..i]));
        let after = &rest[i + 1..];
        let sgr_len = after.strip_prefix('[').and_then(|a| {
            let n = a.find(|c: char| !(c.is_ascii_digit() || c == ';'))?;
            (a[n..].starts_with('m')).then_some(n + 2)
        });
        match sgr_len {
            Some(len) => {
                out.push('\u{1b}');
                out.push_str(&after[..len]);
                rest = &after[len..];
            }
            None => {
                out.push_str("\\u{1b}");
                rest = after;
            }
        }
    }
    out.push_str(&escape_control(rest));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_escape_control_characters_but_keep_drcaches_colors() {
        let rows = vec![vec![
            "evil\u{1b}]0;title\u{7}\u{1b}[2J".to_string(),
            "\u{1b}[32mok\u{1b}[0m".to_string(),
        ]];
        let text = table(&["NAME", "STATE"], &rows);
        assert!(!text.contains('\u{7}'), "{text:?}");
        assert!(
            text.contains("evil\\u{1b}]0;title\\u{7}\\u{1b}[2J"),
            "{text:?}"
        );
        assert!(text.contains("\u{1b}[32mok\u{1b}[0m"), "{text:?}");
        assert_eq!(escape_control("a\nb"), "a\\nb");
        assert_eq!(quoted_name("dr1"), "dr1");
        assert_eq!(quoted_name("a b"), "'a b'");
        assert_eq!(quoted_name("x\u{1b}[31m"), "'x\\u{1b}[31m'");
    }

    #[test]
    fn color_follows_flag_then_no_color_then_terminal() {
        assert!(use_color(ColorChoice::Always, Some("1"), false));
        assert!(!use_color(ColorChoice::Never, None, true));
        assert!(!use_color(ColorChoice::Auto, Some("1"), true));
        assert!(use_color(ColorChoice::Auto, Some(""), true));
        assert!(use_color(ColorChoice::Auto, None, true));
        assert!(!use_color(ColorChoice::Auto, None, false));
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(2_098_443), "2.0 MiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(185), "3m05s");
        assert_eq!(human_duration(7800), "2h10m");
        assert_eq!(human_duration(4 * 86400 + 3 * 3600 + 59), "4d03h");
    }

    #[test]
    fn table_ignores_color_codes_when_aligning() {
        let text = table(
            &["A", "B"],
            &[
                vec!["\x1b[32myes\x1b[0m".into(), "x".into()],
                vec!["no".into(), "y".into()],
            ],
        );
        assert_eq!(text, "A    B\n\x1b[32myes\x1b[0m  x\nno   y");
    }

    #[test]
    fn table_aligns_columns() {
        let text = table(
            &["REGISTRY", "PORT"],
            &[
                vec!["quay.io".into(), "5051".into()],
                vec!["registry.k8s.io".into(), "5053".into()],
            ],
        );
        assert_eq!(
            text,
            "REGISTRY         PORT\nquay.io          5051\nregistry.k8s.io  5053"
        );
    }
}
