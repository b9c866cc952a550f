//! Where an archived record was kept: a leaf the job model names without
//! depending on how records are made.

/// Where a record was kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveLocation {
    /// The compressed record itself, in the timeline entry.
    Inline(Vec<u8>),
    /// Bytes `offset..offset + len` of a segment object.
    Segment(SegmentRef),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRef {
    pub bucket: String,
    pub key: String,
    pub offset: u64,
    pub len: u64,
}

impl SegmentRef {
    /// `s3://bucket/key#offset+len`: one attribute, readable by a person.
    pub fn to_uri(&self) -> String {
        format!("s3://{}/{}#{}+{}", self.bucket, self.key, self.offset, self.len)
    }

    pub fn parse(uri: &str) -> Option<Self> {
        let rest = uri.strip_prefix("s3://")?;
        let (path, range) = rest.rsplit_once('#')?;
        let (bucket, key) = path.split_once('/')?;
        let (offset, len) = range.split_once('+')?;
        if bucket.is_empty() || key.is_empty() {
            return None;
        }
        Some(Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            offset: offset.parse().ok()?,
            len: len.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_reference_reads_back_from_its_uri_and_nonsense_does_not() {
        let at = SegmentRef {
            bucket: "b".into(),
            key: "archive/2026/05/13/a#b".into(),
            offset: 12,
            len: 900,
        };
        assert_eq!(SegmentRef::parse(&at.to_uri()), Some(at));
        for bad in [
            "",
            "s3://",
            "s3://b#1+2",
            "s3:///k#1+2",
            "s3://b/k#1",
            "s3://b/k#x+2",
            "http://b/k#1+2",
        ] {
            assert_eq!(SegmentRef::parse(bad), None, "{bad}");
        }
    }
}
