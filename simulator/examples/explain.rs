//! Prints the model's state at an offset: `cargo run -p cairn-simulator --example explain -- FILE SECONDS`.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let scenario =
        cairn_simulator::Scenario::load(std::path::Path::new(&args[1])).expect("scenario");
    let offset: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(60);
    print!("{}", cairn_simulator::explain(&scenario, offset));
}
