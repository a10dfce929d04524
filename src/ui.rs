//! Human output: everything here goes to stderr, so stdout stays for data.

use std::io::IsTerminal;

use clap::ValueEnum;

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
}

impl Ui {
    pub fn new(verbose: bool, quiet: bool, color: ColorChoice) -> Self {
        let no_color = std::env::var("NO_COLOR").ok();
        Ui {
            verbose,
            quiet,
            color: use_color(color, no_color.as_deref(), std::io::stderr().is_terminal()),
        }
    }

    #[cfg(test)]
    pub fn plain_for_tests() -> Self {
        Ui {
            verbose: false,
            quiet: true,
            color: false,
        }
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
}

/// Lay rows out in aligned columns (the last column is not padded).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
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

#[cfg(test)]
mod tests {
    use super::*;

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
