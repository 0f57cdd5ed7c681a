//! Investigates one bundle directory and prints the finding with every evidence item:
//! `cargo run --release -p cairn-bot --example investigate -- DIR`.
use std::sync::Arc;

#[tokio::main]
async fn main() {
    let dir = std::env::args().nth(1).expect("a bundle directory");
    let bundle = cairn_connectors::Bundle::open(std::path::Path::new(&dir)).expect("bundle");
    let window = bundle.meta().window;
    let incident = cairn_agents::Incident::from_alert(bundle.alert().expect("alert.json"), window);
    let set = cairn_connectors::SourceSet::new(vec![Arc::new(bundle)]);
    let (sink, mut rx) = cairn_agents::ProgressSink::channel();
    let options = cairn_agents::Options {
        progress: sink,
        ..Default::default()
    };
    let finding = cairn_agents::investigate_with(&incident, &set, options)
        .await
        .expect("investigation");
    while let Ok(event) = rx.try_recv() {
        if let cairn_agents::Progress::AgentFinished {
            agent,
            evidence,
            elapsed_ms,
            error,
        } = event
        {
            println!(
                "agent {agent}: {evidence} items in {elapsed_ms} ms {}",
                error.unwrap_or_default()
            );
        }
    }
    for line in &finding.checked {
        println!("checked: {line}");
    }
    for h in finding.ranking.iter().take(8) {
        println!("{} {:?} {:.3}", h.service, h.kind, h.confidence.get());
        for e in &h.supporting {
            println!(
                "    {}/{:?} {:.2} onset={:?}: {}",
                e.domain.as_str(),
                e.signal,
                e.score,
                e.onset_ms,
                e.reason
            );
        }
        for e in &h.contradicting {
            println!("    against: {}", e.reason);
        }
    }
}
