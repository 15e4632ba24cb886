//! `--store DIR` or `--store s3://bucket/prefix`.

use std::fmt;
use std::path::PathBuf;

use object_store::path::Path;

/// Where stored evidence goes: a directory, or an S3 bucket and a prefix within it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    Dir(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl StoreLocation {
    /// Parses `s3://bucket[/prefix]` or a directory path.
    pub fn parse(text: &str) -> Result<StoreLocation, String> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let plain =
                |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
            if bucket.len() < 3 || bucket.len() > 63 || !bucket.chars().all(plain) {
                return Err(format!(
                    "not an S3 bucket name in {:?} (3-63 of a-z 0-9 . -)",
                    text.chars().take(80).collect::<String>()
                ));
            }
            let prefix = prefix.trim_matches('/');
            Path::parse(prefix).map_err(|e| format!("S3 prefix: {e}"))?;
            return Ok(StoreLocation::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            });
        }
        if text.contains("://") {
            return Err("only s3:// URLs and directories are supported".to_owned());
        }
        if text.is_empty() {
            return Err("empty store".to_owned());
        }
        Ok(StoreLocation::Dir(PathBuf::from(text)))
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Dir(dir) => write!(f, "{}", dir.display()),
            StoreLocation::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            StoreLocation::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        assert_eq!(
            StoreLocation::parse("s3://my-bucket/heap/dumps/").unwrap(),
            StoreLocation::S3 {
                bucket: "my-bucket".into(),
                prefix: "heap/dumps".into()
            }
        );
        assert_eq!(
            StoreLocation::parse("s3://my-bucket").unwrap().to_string(),
            "s3://my-bucket"
        );
        assert_eq!(
            StoreLocation::parse("/var/heapgate").unwrap(),
            StoreLocation::Dir("/var/heapgate".into())
        );
        assert!(StoreLocation::parse("s3://").is_err());
        assert!(StoreLocation::parse("s3://Bad_Bucket/x").is_err());
        assert!(StoreLocation::parse("gs://bucket/x").is_err());
        assert!(StoreLocation::parse("").is_err());
    }
}
