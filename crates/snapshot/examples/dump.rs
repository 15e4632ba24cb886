//! Prints what heapgate computes for a snapshot as JSON, for side-by-side checks against
//! DevTools: `cargo run -p heapgate-snapshot --example dump -- FILE`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: dump FILE")?;
    let snapshot = heapgate_snapshot::Snapshot::open(&path)?;
    let classes: Vec<_> = snapshot
        .summary()
        .classes()
        .into_iter()
        .map(|c| (c.name, c.location, c.count, c.self_size, c.retained_size))
        .collect();
    let retained = heapgate_snapshot::testing::retained_sizes(&path)?;
    let distances = heapgate_snapshot::testing::distances(&path)?;
    let out = serde_json::json!({
        "classes": classes,
        "retained": retained,
        "distance": distances,
    });
    println!("{out}");
    Ok(())
}
