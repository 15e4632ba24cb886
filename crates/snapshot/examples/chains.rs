//! Prints the first retainer chain of each node id given, as JSON, for side-by-side checks
//! against DevTools: `cargo run -p heapgate-snapshot --example chains -- FILE ID…`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: chains FILE ID…")?;
    let mut out = serde_json::Map::new();
    for id in args {
        let chain = heapgate_snapshot::testing::first_retainer_chain(&path, id.parse()?)?;
        out.insert(id, serde_json::to_value(chain)?);
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}
