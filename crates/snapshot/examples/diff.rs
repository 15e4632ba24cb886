//! Prints the Comparison table of two snapshots: `diff BASE.heapsnapshot NEW.heapsnapshot
//! [--sort size|delta|count] [--top N] [--json]`. A stand-in for `heapgate diff` (and what
//! `bench/diff` times), so it loads the files one after the other like the CLI will.

use std::{env, process::ExitCode};

use heapgate_snapshot::{SortBy, comparability, diff, load, render_table};

fn main() -> ExitCode {
    let mut paths = Vec::new();
    let mut sort = SortBy::default();
    let mut top = Some(25);
    let mut json = false;
    let mut args = env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--sort" => match args.next().map(|s| s.parse::<SortBy>()) {
                Some(Ok(s)) => sort = s,
                Some(Err(e)) => return fail(&e.to_string()),
                None => return fail("--sort needs a value"),
            },
            "--top" => match args.next().map(|s| s.parse::<usize>()) {
                Some(Ok(0)) => top = None,
                Some(Ok(n)) => top = Some(n),
                _ => return fail("--top needs a number (0 for all)"),
            },
            "--json" => json = true,
            _ => paths.push(arg),
        }
    }
    let [base, new] = paths.as_slice() else {
        return fail(
            "usage: diff BASE.heapsnapshot NEW.heapsnapshot [--sort size|delta|count] [--top N] [--json]",
        );
    };
    let (base, new) = match (load(base), load(new)) {
        (Ok(b), Ok(n)) => (b, n),
        (Err(e), _) | (_, Err(e)) => return fail(&e.to_string()),
    };
    let check = comparability(&base, &new);
    if check.is_warning() {
        eprintln!("warning: {}", check.message);
    }
    let mut rows = diff(&base, &new);
    rows.sort(sort);
    if json {
        match serde_json::to_string_pretty(&rows) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail(&e.to_string()),
        }
    } else {
        print!("{}", render_table(&rows, top));
        eprintln!("{}", check.message);
    }
    ExitCode::SUCCESS
}

fn fail(message: &str) -> ExitCode {
    eprintln!("diff: {message}");
    ExitCode::from(2)
}
