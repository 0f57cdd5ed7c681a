//! `/cairn …`: one closed enum of slash commands, parsed with clap; the doc comments of the
//! variants are what `/cairn help` shows.

use clap::{CommandFactory, Parser, Subcommand};

/// The words after `/cairn`.
#[derive(Debug, Parser)]
#[command(
    name = "/cairn",
    disable_help_subcommand = true,
    disable_help_flag = true,
    disable_version_flag = true
)]
struct SlashLine {
    #[command(subcommand)]
    command: SlashCommand,
}

/// A `/cairn` command.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum SlashCommand {
    /// What Cairn can do (this list).
    Help,
    /// Open a thread here and investigate, e.g. `/cairn investigate why is checkout slow?`
    Investigate {
        /// The question or symptom.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        text: Vec<String>,
    },
    /// Open incidents and where their threads are.
    Status,
    /// Find runbooks for a service or symptom, e.g. `/cairn runbook checkout 5xx`
    Runbook {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        query: Vec<String>,
    },
    /// What a service depends on, who calls it, owners, recent changes, past incidents, runbooks
    Explain {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        service: Vec<String>,
    },
    /// Search knowledge records, past incidents and runbooks, e.g. `/cairn search cart-cache evictions`
    Search {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        query: Vec<String>,
    },
    /// Record knowledge for the team, e.g. `/cairn learn cart-cache evicts under load`
    Learn {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        text: Vec<String>,
    },
    /// Retract a knowledge record you wrote (admins: any), e.g. `/cairn forget 12`
    Forget {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        id: Vec<String>,
    },
}

impl SlashCommand {
    /// Parses the text after `/cairn`; empty text is `help`. The error is the sentence to
    /// show the user.
    pub fn parse(text: &str) -> Result<Self, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.is_empty() {
            return Ok(SlashCommand::Help);
        }
        let argv = std::iter::once("/cairn").chain(words.iter().copied());
        SlashLine::try_parse_from(argv)
            .map(|l| l.command)
            .map_err(|_| {
                format!(
                    "I don't know `/cairn {}`. Try `/cairn help`.",
                    words.join(" ")
                )
            })
    }

    /// `/cairn help`: one line per command, from the doc comments above.
    pub fn help() -> String {
        let cli = SlashLine::command();
        let mut out = String::from("*Cairn* — commands:\n");
        for sub in cli.get_subcommands() {
            let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
            out.push_str(&format!("• `/cairn {}` — {about}\n", sub.get_name()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_closed_set() {
        assert_eq!(SlashCommand::parse(""), Ok(SlashCommand::Help));
        assert_eq!(SlashCommand::parse("help"), Ok(SlashCommand::Help));
        assert_eq!(SlashCommand::parse("status"), Ok(SlashCommand::Status));
        assert_eq!(
            SlashCommand::parse("investigate why is checkout slow? --now"),
            Ok(SlashCommand::Investigate {
                text: ["why", "is", "checkout", "slow?", "--now"]
                    .map(String::from)
                    .to_vec()
            })
        );
        assert!(SlashCommand::parse("investigate").is_err());
        assert!(SlashCommand::parse("deploy prod")
            .unwrap_err()
            .contains("/cairn help"));
    }

    #[test]
    fn help_lists_every_command_from_its_doc_comment() {
        let help = SlashCommand::help();
        for name in [
            "help",
            "investigate",
            "status",
            "runbook",
            "explain",
            "learn",
            "forget",
            "search",
        ] {
            assert!(help.contains(&format!("`/cairn {name}`")), "{help}");
        }
        assert!(help.contains("Open a thread here and investigate"));
    }
}
