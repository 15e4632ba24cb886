//! `heapgate verify`.

use chrono::{DateTime, Utc};
use heapgate_token::{Hour, Keys, Rejection, Verified, Window, locate, payload, verify};

use crate::args::VerifyArgs;
use crate::{Error, Io, output_error};

/// How far `--explain` searches for the hour a rejected token was minted for.
const SEARCH_HOURS: u32 = 24;

pub(crate) fn run(
    args: &VerifyArgs,
    keys: &Keys,
    value: &str,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let value = &*args.instrument.signed_value(value);
    let now = args.at.unwrap_or_else(io.now);
    let window = Window::new(*args.grace, *args.skew).map_err(|e| Error::Config(e.to_string()))?;
    if args.explain {
        explain_tried(&window, now, keys, value, io);
    }
    let result = verify(
        args.hash.trim_end_matches(['\n', '\r']),
        keys,
        value,
        now,
        &window,
    );
    match result {
        Ok(Verified { hour, key_index }) => {
            let key = key_note(key_index, keys);
            writeln!(io.stdout, "valid: minted for hour {hour}{key}").map_err(|e| output_error(&e))
        }
        Err(Rejection::Malformed(m)) => Err(Error::Failed(format!("invalid token: {m}"))),
        Err(Rejection::NoMatch) if args.explain => Err(Error::Failed(explain_no_match(
            &args.hash, keys, value, now,
        ))),
        Err(Rejection::NoMatch) => Err(Error::Failed(
            "invalid token: it matches no key and value for the hours accepted now \
             (--explain tells expired from wrong secret)"
                .to_owned(),
        )),
    }
}

/// `, key #2 of 2` when rotation is in play.
fn key_note(index: usize, keys: &Keys) -> String {
    if keys.len() > 1 {
        format!(", key #{} of {}", index + 1, keys.len())
    } else {
        String::new()
    }
}

fn explain_tried(window: &Window, now: DateTime<Utc>, keys: &Keys, value: &str, io: &mut Io<'_>) {
    let _ = writeln!(
        io.stderr,
        "now {}; {} key(s); payloads tried:",
        now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        keys.len()
    );
    for hour in window.hours(now) {
        let _ = writeln!(io.stderr, "  {}", payload(hour, value));
    }
}

/// The one-line reason for a well-formed token that matched nothing in the window.
fn explain_no_match(presented: &str, keys: &Keys, value: &str, now: DateTime<Utc>) -> String {
    match locate(presented, keys, value, now, SEARCH_HOURS) {
        Ok(Some(Verified { hour, key_index })) => {
            let key = key_note(key_index, keys);
            format!(
                "invalid token: minted for hour {hour}{key}, outside the window ({})",
                relative(hour, now)
            )
        }
        _ => format!(
            "invalid token: no key and value match it for any hour within ±{SEARCH_HOURS} h \
             (wrong secret, wrong --value, or older than a day)"
        ),
    }
}

fn relative(hour: Hour, now: DateTime<Utc>) -> String {
    let current = Hour::containing(now);
    let hours = hour
        .start()
        .signed_duration_since(current.start())
        .num_hours();
    match hours {
        n if n < 0 => format!("{} h ago", -n),
        n => format!("{n} h ahead"),
    }
}
