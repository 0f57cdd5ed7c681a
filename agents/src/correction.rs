//! Reading what engineers say about a cause: "root cause was the cache eviction on
//! cart-cache, not checkout" → cause `cart-cache`, kind `cache_failure`, `checkout` rejected.
//!
//! Deterministic on purpose: the words are matched against the service catalogue and the
//! fault vocabulary, negation is read per clause, and the original words are always kept
//! beside what was understood, so a misreading is visible and can be undone.

use serde::Serialize;

use crate::hypothesis::FaultKind;

/// What a sentence says about an incident's cause.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Correction {
    /// Services named as the cause, in the order they appear.
    pub causes: Vec<String>,
    /// Services named as not the cause ("not checkout", "rather than payments").
    pub rejected: Vec<String>,
    /// The fault kind named (outside negated clauses), if any.
    pub kind: Option<FaultKind>,
    /// The sentence speaks about the cause ("root cause", "was", "because", "not"…) and
    /// names a service or a kind: worth recording from a thread reply.
    pub about_cause: bool,
}

impl Correction {
    /// True when nothing structured was understood.
    pub fn is_empty(&self) -> bool {
        self.causes.is_empty() && self.rejected.is_empty() && self.kind.is_none()
    }
}

/// Phrases naming each fault kind, most specific first. Matched at word starts, so a stem
/// (`throttl`) matches its forms.
const VOCABULARY: &[(&str, FaultKind)] = &[
    ("bad deploy", FaultKind::BadDeploy),
    ("bad release", FaultKind::BadDeploy),
    ("rollback", FaultKind::BadDeploy),
    ("rolled back", FaultKind::BadDeploy),
    ("rollout", FaultKind::BadDeploy),
    ("deploy", FaultKind::BadDeploy),
    ("release", FaultKind::BadDeploy),
    ("regression", FaultKind::BadDeploy),
    ("new version", FaultKind::BadDeploy),
    ("feature flag", FaultKind::ConfigChange),
    ("config", FaultKind::ConfigChange),
    ("flag", FaultKind::ConfigChange),
    ("memory leak", FaultKind::MemoryLeak),
    ("out of memory", FaultKind::MemoryLeak),
    ("oom", FaultKind::MemoryLeak),
    ("leak", FaultKind::MemoryLeak),
    ("memory", FaultKind::MemoryLeak),
    ("heap", FaultKind::MemoryLeak),
    ("cpu", FaultKind::CpuSaturation),
    ("throttl", FaultKind::CpuSaturation),
    ("connection pool", FaultKind::DbPoolExhaustion),
    ("pool exhaust", FaultKind::DbPoolExhaustion),
    ("hikari", FaultKind::DbPoolExhaustion),
    ("pool", FaultKind::DbPoolExhaustion),
    ("slow quer", FaultKind::SlowQuery),
    ("missing index", FaultKind::SlowQuery),
    ("full table scan", FaultKind::SlowQuery),
    ("lock contention", FaultKind::SlowQuery),
    ("query", FaultKind::SlowQuery),
    ("queries", FaultKind::SlowQuery),
    ("rate limit", FaultKind::RateLimited),
    ("rate-limit", FaultKind::RateLimited),
    ("ratelimit", FaultKind::RateLimited),
    ("429", FaultKind::RateLimited),
    ("quota", FaultKind::RateLimited),
    ("third party", FaultKind::DependencyLatency),
    ("third-party", FaultKind::DependencyLatency),
    ("upstream", FaultKind::DependencyLatency),
    ("provider", FaultKind::DependencyLatency),
    ("vendor", FaultKind::DependencyLatency),
    ("packet loss", FaultKind::NetworkLoss),
    ("packet", FaultKind::NetworkLoss),
    ("retransmi", FaultKind::NetworkLoss),
    ("connection reset", FaultKind::NetworkLoss),
    ("network", FaultKind::NetworkLoss),
    ("dns", FaultKind::DnsFailure),
    ("resolv", FaultKind::DnsFailure),
    ("nxdomain", FaultKind::DnsFailure),
    ("certificate", FaultKind::CertExpired),
    ("cert", FaultKind::CertExpired),
    ("tls", FaultKind::CertExpired),
    ("ssl", FaultKind::CertExpired),
    ("disk", FaultKind::DiskFull),
    ("no space", FaultKind::DiskFull),
    ("volume", FaultKind::DiskFull),
    ("node", FaultKind::NodeFailure),
    ("kubelet", FaultKind::NodeFailure),
    ("traffic spike", FaultKind::TrafficSpike),
    ("load spike", FaultKind::TrafficSpike),
    ("spike", FaultKind::TrafficSpike),
    ("surge", FaultKind::TrafficSpike),
    ("traffic", FaultKind::TrafficSpike),
    ("cache", FaultKind::CacheFailure),
    ("evict", FaultKind::CacheFailure),
    ("backlog", FaultKind::QueueBacklog),
    ("consumer lag", FaultKind::QueueBacklog),
    ("lag", FaultKind::QueueBacklog),
    ("queue", FaultKind::QueueBacklog),
];

/// Words that make the rest of their clause a denial.
const NEGATIONS: &[&str] = &[
    "not",
    "n't",
    "no",
    "never",
    "instead of",
    "rather than",
    "ruled out",
    "innocent",
];

/// Words that say a sentence is about the cause (a plain "checkout is back" is not).
const CAUSE_WORDS: &[&str] = &[
    "root cause",
    "cause",
    "caused",
    "because",
    "due to",
    "actually",
    "culprit",
    "not",
    "wasn't",
    "isn't",
    "wrong",
    "turned out",
    "blame",
    "fault",
    "fixed by",
    "resolved by",
    "triggered by",
    "it was",
    "it's",
    "was the",
];

/// Reads `text` against the service catalogue `services`.
pub fn parse(text: &str, services: &[String]) -> Correction {
    let lower = without_mentions(&text.to_lowercase());
    // Longest names first so `cart-cache` wins over `cart`.
    let mut names: Vec<&String> = services.iter().filter(|s| !s.is_empty()).collect();
    names.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    let mut taken = vec![false; lower.len()];
    let mut mentions: Vec<(usize, String)> = Vec::new();
    for name in names {
        let needle = name.to_lowercase();
        for (at, _) in lower.match_indices(&needle) {
            let end = at + needle.len();
            if taken[at..end].iter().any(|t| *t) || !boundary(&lower, at, end, true) {
                continue;
            }
            taken[at..end].iter_mut().for_each(|t| *t = true);
            mentions.push((at, name.clone()));
        }
    }
    mentions.sort();

    let mut out = Correction::default();
    for (at, name) in &mentions {
        let list = if negated(&lower, *at) {
            &mut out.rejected
        } else {
            &mut out.causes
        };
        if !list.contains(name) {
            list.push(name.clone());
        }
    }
    // A service both blamed and denied ("checkout? no, not checkout") counts as denied.
    let rejected = out.rejected.clone();
    out.causes.retain(|c| !rejected.contains(c));

    // The kind: the first phrase outside service names and outside a denial.
    let mut best: Option<(usize, FaultKind)> = None;
    for (phrase, kind) in VOCABULARY {
        for (at, _) in lower.match_indices(phrase) {
            let end = at + phrase.len();
            if taken[at..end].iter().any(|t| *t) || !boundary(&lower, at, end, false) {
                continue;
            }
            if negated(&lower, at) {
                continue;
            }
            if best.is_none_or(|(b, _)| at < b) {
                best = Some((at, *kind));
            }
        }
    }
    // The catalogue's own names (`cache_failure`, "cache failure") are the clearest of all.
    for kind in FaultKind::ALL {
        let name = kind.as_str();
        let spaced = name.replace('_', " ");
        if let Some(at) = lower.find(name).or_else(|| lower.find(&spaced)) {
            if !negated(&lower, at) {
                best = Some((0, kind));
                break;
            }
        }
    }
    out.kind = best.map(|(_, k)| k);
    out.about_cause = !out.is_empty()
        && CAUSE_WORDS.iter().any(|w| {
            lower
                .match_indices(w)
                .any(|(at, _)| boundary(&lower, at, at + w.len(), true))
        });
    out
}

/// Slack mentions (`<@U123>`, `<!here>`) are not words of the sentence.
fn without_mentions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        match rest[open..].find('>') {
            Some(close) if rest[open + 1..].starts_with(['@', '!', '#']) => {
                out.push(' ');
                rest = &rest[open + close + 1..];
            }
            _ => {
                out.push('<');
                rest = &rest[open + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Is `text[at..end]` a whole word (or, with `whole_end == false`, a word start)? Names
/// hold `-` and `_`, so `cart` is not a word inside `cart-cache`; a trailing `-` is
/// punctuation.
fn boundary(text: &str, at: usize, end: usize, whole_end: bool) -> bool {
    let inner = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    let before = text[..at].chars().next_back().is_none_or(|c| !inner(c));
    let mut next = text[end..].chars();
    let after = match next.next() {
        None => true,
        Some('-') => !next.next().is_some_and(char::is_alphanumeric),
        Some(c) => !(c.is_alphanumeric() || c == '_'),
    };
    before && (!whole_end || after)
}

/// Does a denial govern the word at `at`: a negation earlier in the same clause?
fn negated(text: &str, at: usize) -> bool {
    let start = clause_start(text, at);
    let clause = &text[start..at];
    NEGATIONS.iter().any(|n| {
        clause.match_indices(n).any(|(i, _)| {
            // `n't` sticks to its verb; the others are words of their own.
            *n == "n't" || boundary(clause, i, i + n.len(), true)
        })
    })
}

/// Where the clause holding `at` begins: after the last `, ; . ! ? : ( \n` or " but ".
fn clause_start(text: &str, at: usize) -> usize {
    let head = &text[..at];
    let punct = head
        .rfind([',', ';', '.', '!', '?', ':', '(', '\n'])
        .map_or(0, |i| i + 1);
    let but = head.rfind(" but ").map_or(0, |i| i + 5);
    let it_was = head.rfind(" it was ").map_or(0, |i| i + 1);
    punct.max(but).max(it_was)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue() -> Vec<String> {
        [
            "checkout",
            "cart",
            "cart-cache",
            "payments",
            "orders-db",
            "frontend",
        ]
        .map(String::from)
        .to_vec()
    }

    fn read(text: &str) -> Correction {
        parse(text, &catalogue())
    }

    #[test]
    fn the_issue_example() {
        let c = read("root cause was the cache eviction on cart-cache, not checkout");
        assert_eq!(c.causes, vec!["cart-cache"]);
        assert_eq!(c.rejected, vec!["checkout"]);
        assert_eq!(c.kind, Some(FaultKind::CacheFailure));
        assert!(c.about_cause);
    }

    #[test]
    fn denials_in_several_forms() {
        let c = read("<@U0CAIRN> it wasn't checkout, it was a bad deploy of payments");
        assert_eq!(
            (c.causes.clone(), c.rejected.clone()),
            (vec!["payments".to_owned()], vec!["checkout".to_owned()])
        );
        assert_eq!(c.kind, Some(FaultKind::BadDeploy));
        let c = read("not checkout but orders-db: slow queries after the index was dropped");
        assert_eq!(
            (c.causes, c.rejected),
            (vec!["orders-db".to_owned()], vec!["checkout".to_owned()])
        );
        assert_eq!(c.kind, Some(FaultKind::SlowQuery));
        let c = read("payments rather than cart");
        assert_eq!(
            (c.causes, c.rejected),
            (vec!["payments".to_owned()], vec!["cart".to_owned()])
        );
    }

    #[test]
    fn longest_service_name_wins_and_names_are_not_kinds() {
        let c = read("it was cart-cache");
        assert_eq!(c.causes, vec!["cart-cache"]);
        assert_eq!(
            c.kind, None,
            "the `cache` inside a service name is not a kind"
        );
        assert_eq!(read("the cart service").causes, vec!["cart"]);
        assert!(
            read("checkout_v2 and frontends").causes.is_empty(),
            "whole words only"
        );
    }

    #[test]
    fn catalogue_kind_names_are_understood() {
        assert_eq!(
            read("frontend: dns_failure").kind,
            Some(FaultKind::DnsFailure)
        );
        assert_eq!(
            read("cause: memory leak in payments").kind,
            Some(FaultKind::MemoryLeak)
        );
        assert_eq!(
            read("the cert on frontend expired").kind,
            Some(FaultKind::CertExpired)
        );
    }

    #[test]
    fn chatter_is_not_a_correction() {
        assert!(!read("looking into it now").about_cause);
        assert!(read("looking into it now").is_empty());
        assert!(!read("checkout dashboards here").about_cause);
        assert!(!read("thanks, checkout is back").about_cause);
        assert!(read("it was checkout after all").about_cause);
    }

    #[test]
    fn junk_never_panics() {
        for text in [
            "",
            "<",
            "<@",
            "<@U1",
            "n't",
            "\u{202e}checkout\u{202c}",
            "cart-",
            "-cart",
            "\u{0}not\u{0}",
            "not, not; not",
        ] {
            let _ = read(text);
        }
    }
}
