//! A one-line summary of an X.509 certificate (its subject, its issuer and
//! its validity), read from DER by a small hand-written walker.
//!
//! When a TLS handshake fails, the diagnosis window records the certificate
//! the server presented: "unknown issuer" reads differently when the issuer
//! turns out to be a TLS-intercepting proxy's CA, and "expired" is clearer
//! with the date. Those three fields are all it needs, and reading them
//! takes a few hundred lines instead of an X.509 crate (and its ASN.1 stack)
//! in every build.
//!
//! [`CertSummary::from_der`] reads; it does not verify. It checks no
//! signature, chain, extension or host name. It accepts definite-length DER
//! only, never panics, walks a fixed depth (no recursion), and whatever the
//! input allocates at most two short strings: each name is cut at
//! [`MAX_NAME`] characters.
//!
//! # Example
//!
//! ```
//! # let key = rcgen::KeyPair::generate().unwrap();
//! # let mut params = rcgen::CertificateParams::default();
//! # params.distinguished_name = rcgen::DistinguishedName::new();
//! # params.distinguished_name.push(rcgen::DnType::CommonName, "api.example.test");
//! # params.distinguished_name.push(rcgen::DnType::OrganizationName, "Example");
//! # params.not_before = rcgen::date_time_ymd(2026, 1, 1);
//! # params.not_after = rcgen::date_time_ymd(2027, 1, 1);
//! # let der = params.self_signed(&key).unwrap().der().to_vec();
//! use std::time::{Duration, UNIX_EPOCH};
//! use triage_core::x509::CertSummary;
//!
//! // `der`: the end-entity certificate the server presented.
//! let cert = CertSummary::from_der(&der).unwrap();
//! assert_eq!(cert.subject(), "CN=api.example.test, O=Example");
//! assert!(cert.is_self_signed());
//! assert_eq!(cert.not_after(), Some(UNIX_EPOCH + Duration::from_secs(1_798_761_600)));
//! assert_eq!(
//!     cert.to_string(),
//!     "subject \"CN=api.example.test, O=Example\" issued by \"CN=api.example.test, O=Example\" \
//!      (self-signed) valid 2026-01-01T00:00:00Z..2027-01-01T00:00:00Z",
//! );
//! assert_eq!(CertSummary::from_der(b"not a certificate"), None);
//! ```

use std::fmt::{self, Write as _};
use std::time::SystemTime;

use crate::time;

/// A rendered name is cut to at most this many characters, the last one
/// `…`.
pub const MAX_NAME: usize = 256;

const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const UTF8_STRING: u8 = 0x0c;
const NUMERIC_STRING: u8 = 0x12;
const PRINTABLE_STRING: u8 = 0x13;
const TELETEX_STRING: u8 = 0x14;
const IA5_STRING: u8 = 0x16;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const VISIBLE_STRING: u8 = 0x1a;
const UNIVERSAL_STRING: u8 = 0x1c;
const BMP_STRING: u8 = 0x1e;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
/// `[0] EXPLICIT Version`.
const VERSION: u8 = 0xa0;

/// Attribute types shown by name, as OpenSSL does; others are dotted.
const ATTRIBUTE_NAMES: &[(&[u8], &str)] = &[
    (&[0x55, 0x04, 0x03], "CN"),
    (&[0x55, 0x04, 0x0a], "O"),
    (&[0x55, 0x04, 0x0b], "OU"),
    (&[0x55, 0x04, 0x06], "C"),
    (&[0x55, 0x04, 0x07], "L"),
    (&[0x55, 0x04, 0x08], "ST"),
    // 0.9.2342.19200300.100.1.25
    (
        &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19],
        "DC",
    ),
    // 1.2.840.113549.1.9.1
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01],
        "emailAddress",
    ),
];

/// The subject, issuer and validity of a certificate.
///
/// Names render in certificate order as one line, RFC 4514 style:
/// `CN=api.example.test, O=Example`, multi-valued RDNs joined with `+`,
/// attribute types other than `CN`, `O`, `OU`, `C`, `L`, `ST`, `DC` and
/// `emailAddress` as dotted OIDs (`2.5.4.5=…`), values of an unknown string
/// type as `#` and the hex of their DER. `,` `+` `"` `\` `<` `>` `;` and a
/// leading `#` in a value are escaped with `\`; control, bidirectional
/// control and line-separator characters are dropped.
///
/// Everything in it is public: a server shows its certificate to anyone who
/// connects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CertSummary {
    subject: String,
    issuer: String,
    #[cfg_attr(feature = "serde", serde(serialize_with = "serialize_time"))]
    not_before: Option<SystemTime>,
    #[cfg_attr(feature = "serde", serde(serialize_with = "serialize_time"))]
    not_after: Option<SystemTime>,
    self_signed: bool,
}

impl CertSummary {
    /// Reads a DER-encoded certificate (exactly one, no trailing bytes).
    ///
    /// `None` when the input is not the outline of a certificate:
    /// `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version
    /// OPTIONAL, serialNumber INTEGER, signature SEQUENCE, issuer Name,
    /// validity SEQUENCE { Time, Time }, subject Name, .. }, .. }`, with
    /// well-formed names. A time that is malformed, out of range or before
    /// 1970 is read as unknown (`None`) rather than failing the whole
    /// certificate.
    pub fn from_der(der: &[u8]) -> Option<CertSummary> {
        let mut input = Der(der);
        let certificate = input.expect(SEQUENCE)?;
        if !input.is_empty() {
            return None;
        }
        let tbs = Der(certificate.content).expect(SEQUENCE)?;
        let mut tbs = Der(tbs.content);
        let mut serial = tbs.next()?;
        if serial.tag == VERSION {
            serial = tbs.next()?;
        }
        if serial.tag != INTEGER {
            return None;
        }
        tbs.expect(SEQUENCE)?;
        let issuer = tbs.expect(SEQUENCE)?;
        let validity = tbs.expect(SEQUENCE)?;
        let subject = tbs.expect(SEQUENCE)?;

        let mut validity = Der(validity.content);
        let not_before = validity.next()?;
        let not_after = validity.next()?;
        if !validity.is_empty() {
            return None;
        }
        Some(CertSummary {
            subject: render_name(subject.content)?,
            issuer: render_name(issuer.content)?,
            not_before: time_of(not_before)?,
            not_after: time_of(not_after)?,
            self_signed: subject.whole == issuer.whole,
        })
    }

    /// The subject's name: `CN=api.example.test, O=Example`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The issuer's name: `CN=Example Root CA`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The start of the validity period, if it could be read.
    pub fn not_before(&self) -> Option<SystemTime> {
        self.not_before
    }

    /// The end of the validity period, if it could be read.
    pub fn not_after(&self) -> Option<SystemTime> {
        self.not_after
    }

    /// Whether the issuer's name is the subject's, byte for byte: a root
    /// or a self-signed certificate (the signature is not checked).
    pub fn is_self_signed(&self) -> bool {
        self.self_signed
    }
}

/// `subject "CN=api.example.test" issued by "CN=Example Root CA" valid
/// 2026-01-01T00:00:00Z..2027-01-01T00:00:00Z`, with `(self-signed)` after
/// the issuer when it is, and `?` for a time that could not be read.
impl fmt::Display for CertSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "subject \"{}\" issued by \"{}\"",
            self.subject, self.issuer
        )?;
        if self.self_signed {
            f.write_str(" (self-signed)")?;
        }
        f.write_str(" valid ")?;
        write_time(self.not_before, f)?;
        f.write_str("..")?;
        write_time(self.not_after, f)
    }
}

fn write_time(t: Option<SystemTime>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match t {
        Some(t) => f.write_str(&rfc3339(t)),
        None => f.write_str("?"),
    }
}

/// `2026-01-01T00:00:00Z`: certificate times are whole seconds, so the
/// packet's `.000` is left out.
fn rfc3339(t: SystemTime) -> String {
    let mut text = time::format_rfc3339_millis(t);
    if text.ends_with(".000Z") {
        text.truncate(text.len() - ".000Z".len());
        text.push('Z');
    }
    text
}

#[cfg(feature = "serde")]
fn serialize_time<S: serde::Serializer>(
    t: &Option<SystemTime>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => serializer.serialize_some(&rfc3339(*t)),
        None => serializer.serialize_none(),
    }
}

/// One DER element.
#[derive(Debug, Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    /// Tag, length and content.
    whole: &'a [u8],
}

/// The elements of one level of DER, in order.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The next element; `None` at the end or when it is malformed: a
    /// high tag number (none is read here), an indefinite length, a length
    /// of more than four bytes or past the end.
    fn next(&mut self) -> Option<Tlv<'a>> {
        let input = self.0;
        let [tag, first, rest @ ..] = input else {
            return None;
        };
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (len, rest) = match *first {
            n @ 0..=0x7f => (usize::from(n), rest),
            n @ 0x81..=0x84 => {
                let (bytes, rest) = rest.split_at_checked(usize::from(n & 0x7f))?;
                let len = bytes.iter().try_fold(0usize, |len, &b| {
                    len.checked_mul(256)?.checked_add(usize::from(b))
                })?;
                (len, rest)
            }
            _ => return None,
        };
        let (content, rest) = rest.split_at_checked(len)?;
        let whole = input.get(..input.len() - rest.len())?;
        self.0 = rest;
        Some(Tlv {
            tag: *tag,
            content,
            whole,
        })
    }

    /// The next element if it has tag `tag`.
    fn expect(&mut self, tag: u8) -> Option<Tlv<'a>> {
        self.next().filter(|t| t.tag == tag)
    }
}

/// Renders `Name ::= SEQUENCE OF SET OF SEQUENCE { OID, value }` (the
/// content of the outer SEQUENCE); `None` if it is malformed.
fn render_name(name: &[u8]) -> Option<String> {
    let mut line = Line::default();
    let mut rdns = Der(name);
    let mut first = true;
    while !rdns.is_empty() {
        let rdn = rdns.expect(SET)?;
        let mut attributes = Der(rdn.content);
        if attributes.is_empty() {
            return None;
        }
        let mut first_in_rdn = true;
        while !attributes.is_empty() {
            let attribute = attributes.expect(SEQUENCE)?;
            let mut parts = Der(attribute.content);
            let oid = parts.expect(OID)?;
            let value = parts.next()?;
            if !parts.is_empty() {
                return None;
            }
            if !first_in_rdn {
                line.push_str("+");
            } else if !first {
                line.push_str(", ");
            }
            write_attribute_type(&mut line, oid.content)?;
            line.push_str("=");
            write_value(&mut line, value);
            first = false;
            first_in_rdn = false;
        }
    }
    Some(line.finish())
}

/// `CN`, `O`, … or the dotted OID; `None` if the OID is malformed.
fn write_attribute_type(line: &mut Line, oid: &[u8]) -> Option<()> {
    if let Some((_, name)) = ATTRIBUTE_NAMES.iter().find(|(o, _)| *o == oid) {
        line.push_str(name);
        return Some(());
    }
    if oid.last().is_none_or(|b| b & 0x80 != 0) {
        return None;
    }
    let mut arc = 0u64;
    let mut at_start = true;
    let mut first_arc = true;
    for &b in oid {
        if at_start && b == 0x80 {
            // A non-minimal encoding.
            return None;
        }
        arc = arc.checked_mul(128)?.checked_add(u64::from(b & 0x7f))?;
        at_start = b & 0x80 == 0;
        if !at_start {
            continue;
        }
        if first_arc {
            let (x, y) = match arc {
                0..40 => (0, arc),
                40..80 => (1, arc - 40),
                _ => (2, arc - 80),
            };
            let _ = write!(line, "{x}.{y}");
            first_arc = false;
        } else {
            let _ = write!(line, ".{arc}");
        }
        arc = 0;
    }
    Some(())
}

/// Writes an attribute value: the string types decoded (UTF-8, and the
/// ASCII types, with `U+FFFD` for bad bytes; T.61 as Latin-1; BMP as
/// UTF-16BE; Universal as UTF-32BE), anything else as `#` and hex.
fn write_value(line: &mut Line, value: Tlv<'_>) {
    line.start_value();
    match value.tag {
        UTF8_STRING | PRINTABLE_STRING | IA5_STRING | NUMERIC_STRING | VISIBLE_STRING => {
            for chunk in value.content.utf8_chunks() {
                chunk.valid().chars().for_each(|c| line.push_value(c));
                if !chunk.invalid().is_empty() {
                    line.push_value(char::REPLACEMENT_CHARACTER);
                }
            }
        }
        TELETEX_STRING => value
            .content
            .iter()
            .for_each(|&b| line.push_value(char::from(b))),
        BMP_STRING => {
            let units = value.content.chunks_exact(2);
            let odd = !units.remainder().is_empty();
            let units = units.map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
            for c in char::decode_utf16(units) {
                line.push_value(c.unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            if odd {
                line.push_value(char::REPLACEMENT_CHARACTER);
            }
        }
        UNIVERSAL_STRING => {
            let units = value.content.chunks_exact(4);
            let odd = !units.remainder().is_empty();
            for unit in units {
                let code = u32::from_be_bytes([unit[0], unit[1], unit[2], unit[3]]);
                line.push_value(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            if odd {
                line.push_value(char::REPLACEMENT_CHARACTER);
            }
        }
        _ => {
            line.push_str("#");
            for b in value.whole {
                let _ = write!(line, "{b:02x}");
            }
        }
    }
}

/// A name being rendered: at most [`MAX_NAME`] characters, cut between
/// whole units (an escape and its character stay together).
#[derive(Default)]
struct Line {
    text: String,
    chars: usize,
    /// `text.len()` at the last unit boundary within `MAX_NAME - 1`
    /// characters: where a cut goes, to leave room for `…`.
    room: usize,
    cut: bool,
    value_start: bool,
}

impl Line {
    /// Appends `c`, escaped if `escape`, unless it is a character that
    /// must not reach a one-line log.
    fn push_unit(&mut self, c: char, escape: bool) {
        if self.cut || dropped(c) {
            return;
        }
        let n = 1 + usize::from(escape);
        if self.chars + n > MAX_NAME {
            self.cut = true;
            return;
        }
        if escape {
            self.text.push('\\');
        }
        self.text.push(c);
        self.chars += n;
        if self.chars < MAX_NAME {
            self.room = self.text.len();
        }
        self.value_start = false;
    }

    /// Syntax: separators, types, hex.
    fn push_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.push_unit(c, false));
    }

    fn start_value(&mut self) {
        self.value_start = true;
    }

    /// A character of a string value, escaped as RFC 4514 says.
    fn push_value(&mut self, c: char) {
        let escape =
            matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') || (c == '#' && self.value_start);
        self.push_unit(c, escape);
    }

    fn finish(mut self) -> String {
        if self.cut {
            self.text.truncate(self.room);
            self.text.push('…');
        }
        self.text
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

/// Control characters (C0, DEL, C1), bidirectional controls and line or
/// paragraph separators: they would break or disguise a one-line log.
fn dropped(c: char) -> bool {
    crate::redact::is_hostile(c)
}

/// `Time ::= CHOICE { UTCTime, GeneralizedTime }`: `None` if the element
/// is neither; `Some(None)` if it is one but cannot be read (malformed,
/// out of range, before 1970).
fn time_of(t: Tlv<'_>) -> Option<Option<SystemTime>> {
    match t.tag {
        UTC_TIME | GENERALIZED_TIME => Some(read_time(t.tag, t.content)),
        _ => None,
    }
}

/// `UTCTime` `YYMMDDHHMMSSZ` (`YY` below 50 is 20YY, else 19YY) or
/// `GeneralizedTime` `YYYYMMDDHHMMSS[.fff]Z` (the fraction is ignored).
fn read_time(tag: u8, text: &[u8]) -> Option<SystemTime> {
    let year_len = if tag == UTC_TIME { 2 } else { 4 };
    let (year, rest) = text.split_at_checked(year_len)?;
    let (fields, rest) = rest.split_at_checked(10)?;
    if !year.iter().chain(fields).all(u8::is_ascii_digit) {
        return None;
    }
    let rest = match rest {
        [b'.' | b',', fraction @ ..] if tag == GENERALIZED_TIME => {
            let n = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            fraction.get(n..)?
        }
        _ => rest,
    };
    if rest != b"Z" {
        return None;
    }
    // Rewritten as RFC 3339 for the crate's validating parser.
    let mut date = *b"YYYY-MM-DDThh:mm:ssZ";
    let century: &[u8] = match year {
        [b'0'..=b'4', _] => b"20",
        [_, _] => b"19",
        _ => b"",
    };
    for (slot, &b) in date.iter_mut().zip(century.iter().chain(year)) {
        *slot = b;
    }
    for (i, pair) in fields.chunks_exact(2).enumerate() {
        // MM at 5, DD at 8, hh at 11, mm at 14, ss at 17.
        if let Some(slot) = date.get_mut(5 + 3 * i..7 + 3 * i) {
            slot.copy_from_slice(pair);
        }
    }
    time::parse_rfc3339(std::str::from_utf8(&date).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rcgen::string::{BmpString, Ia5String, PrintableString, TeletexString, UniversalString};
    use rcgen::{
        CertificateParams, DistinguishedName, DnType, DnValue, Issuer, KeyPair, date_time_ymd,
    };
    use std::time::{Duration, UNIX_EPOCH};

    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const O: &[u8] = &[0x55, 0x04, 0x0a];

    fn at(secs: u64) -> Option<SystemTime> {
        Some(UNIX_EPOCH + Duration::from_secs(secs))
    }

    fn params(names: Vec<(DnType, DnValue)>) -> CertificateParams {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        for (ty, value) in names {
            params.distinguished_name.push(ty, value);
        }
        params.not_before = date_time_ymd(2026, 1, 1);
        params.not_after = date_time_ymd(2027, 1, 1);
        params
    }

    fn self_signed(params: &CertificateParams) -> Vec<u8> {
        let key = KeyPair::generate().expect("key");
        params
            .self_signed(&key)
            .expect("certificate")
            .der()
            .to_vec()
    }

    fn utf8(s: &str) -> DnValue {
        DnValue::Utf8String(s.to_owned())
    }

    /// A real certificate: CN and O, 2026 to 2027.
    fn sample() -> Vec<u8> {
        self_signed(&params(vec![
            (DnType::CommonName, utf8("api.example.test")),
            (DnType::OrganizationName, utf8("Example")),
        ]))
    }

    // A DER writer for certificates rcgen cannot make.
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len().to_be_bytes();
        let skip = len.iter().take_while(|&&b| b == 0).count();
        if content.len() < 0x80 {
            out.push(content.len() as u8);
        } else {
            out.push(0x80 | (len.len() - skip) as u8);
            out.extend_from_slice(&len[skip..]);
        }
        out.extend_from_slice(content);
        out
    }

    fn attribute(oid: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
        tlv(SEQUENCE, &[tlv(OID, oid), tlv(tag, value)].concat())
    }

    fn rdn(attributes: &[Vec<u8>]) -> Vec<u8> {
        tlv(SET, &attributes.concat())
    }

    fn name(rdns: &[Vec<u8>]) -> Vec<u8> {
        tlv(SEQUENCE, &rdns.concat())
    }

    fn validity(before: (u8, &str), after: (u8, &str)) -> Vec<u8> {
        tlv(
            SEQUENCE,
            &[
                tlv(before.0, before.1.as_bytes()),
                tlv(after.0, after.1.as_bytes()),
            ]
            .concat(),
        )
    }

    fn utc_2026() -> Vec<u8> {
        validity((UTC_TIME, "260101000000Z"), (UTC_TIME, "270101000000Z"))
    }

    /// A certificate outline (v3 unless `v1`) with an empty key and
    /// signature.
    fn cert(v1: bool, issuer: &[u8], validity: &[u8], subject: &[u8]) -> Vec<u8> {
        let algorithm = tlv(
            SEQUENCE,
            &tlv(OID, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]),
        );
        let version = if v1 {
            Vec::new()
        } else {
            tlv(VERSION, &tlv(INTEGER, &[2]))
        };
        let tbs = [
            version,
            tlv(INTEGER, &[0x01, 0x02]),
            algorithm.clone(),
            issuer.to_vec(),
            validity.to_vec(),
            subject.to_vec(),
            tlv(SEQUENCE, &[]),
        ]
        .concat();
        tlv(
            SEQUENCE,
            &[tlv(SEQUENCE, &tbs), algorithm, tlv(0x03, &[0])].concat(),
        )
    }

    /// The subject rendered from one RDN of attributes, in a hand-made
    /// certificate.
    fn subject_of(attributes: &[Vec<u8>]) -> Option<String> {
        let subject = name(&[rdn(attributes)]);
        let issuer = name(&[rdn(&[attribute(CN, UTF8_STRING, b"CA")])]);
        CertSummary::from_der(&cert(false, &issuer, &utc_2026(), &subject))
            .map(|c| c.subject().to_owned())
    }

    /// What holds for any summary: bounded one-line names, times in range.
    fn assert_sane(summary: &CertSummary) {
        for name in [summary.subject(), summary.issuer()] {
            assert!(name.chars().count() <= MAX_NAME, "{name:?}");
            assert!(!name.chars().any(dropped), "{name:?}");
        }
        if summary.is_self_signed() {
            assert_eq!(summary.subject(), summary.issuer());
        }
        let end = UNIX_EPOCH + Duration::from_secs(253_402_300_800); // 10000-01-01
        for t in [summary.not_before(), summary.not_after()]
            .into_iter()
            .flatten()
        {
            assert!(t < end);
        }
        assert!(!summary.to_string().chars().any(dropped));
    }

    #[test]
    fn self_signed_certificate() {
        let summary = CertSummary::from_der(&sample()).expect("summary");
        assert_eq!(summary.subject(), "CN=api.example.test, O=Example");
        assert_eq!(summary.issuer(), "CN=api.example.test, O=Example");
        assert!(summary.is_self_signed());
        assert_eq!(summary.not_before(), at(1_767_225_600));
        assert_eq!(summary.not_after(), at(1_798_761_600));
        assert_eq!(
            summary.to_string(),
            "subject \"CN=api.example.test, O=Example\" issued by \"CN=api.example.test, O=Example\" \
             (self-signed) valid 2026-01-01T00:00:00Z..2027-01-01T00:00:00Z"
        );
    }

    #[test]
    fn leaf_signed_by_a_ca() {
        let ca_key = KeyPair::generate().expect("key");
        let ca_params = params(vec![
            (DnType::CommonName, utf8("Example Root CA")),
            (DnType::OrganizationName, utf8("Example")),
        ]);
        let ca = self_signed(&ca_params);
        let issuer = Issuer::new(ca_params, ca_key);

        let mut leaf = params(vec![
            (DnType::CommonName, utf8("api.example.test")),
            (DnType::OrganizationName, utf8("Example")),
            (DnType::CountryName, utf8("DE")),
        ]);
        leaf.not_before = date_time_ymd(2026, 3, 1) + Duration::from_secs(8 * 3600 + 30);
        leaf.not_after = date_time_ymd(2026, 5, 30);
        let key = KeyPair::generate().expect("key");
        let der = leaf.signed_by(&key, &issuer).expect("leaf").der().to_vec();

        let summary = CertSummary::from_der(&der).expect("summary");
        assert_eq!(summary.subject(), "CN=api.example.test, O=Example, C=DE");
        assert_eq!(summary.issuer(), "CN=Example Root CA, O=Example");
        assert!(!summary.is_self_signed());
        assert_eq!(summary.not_before(), at(1_772_352_030));
        assert_eq!(summary.not_after(), at(1_780_099_200));
        assert_eq!(
            summary.to_string(),
            "subject \"CN=api.example.test, O=Example, C=DE\" issued by \"CN=Example Root CA, O=Example\" \
             valid 2026-03-01T08:00:30Z..2026-05-30T00:00:00Z"
        );
        let root = CertSummary::from_der(&ca).expect("root");
        assert_eq!(root.subject(), summary.issuer());
        assert!(root.is_self_signed());
    }

    #[test]
    fn generalized_time_past_2050() {
        let mut params = params(vec![(DnType::CommonName, utf8("long-lived"))]);
        params.not_before = date_time_ymd(2049, 12, 31) + Duration::from_secs(86_399);
        params.not_after = date_time_ymd(2051, 6, 15) + Duration::from_secs(45_015);
        let der = self_signed(&params);
        // rcgen follows RFC 5280: UTCTime before 2050, GeneralizedTime from.
        assert!(der.windows(15).any(|w| w == b"\x17\x0d491231235959Z"));
        assert!(der.windows(17).any(|w| w == b"\x18\x0f20510615123015Z"));

        let summary = CertSummary::from_der(&der).expect("summary");
        assert_eq!(summary.not_before(), at(2_524_607_999));
        assert_eq!(summary.not_after(), at(2_570_445_015));
        assert!(
            summary
                .to_string()
                .ends_with("valid 2049-12-31T23:59:59Z..2051-06-15T12:30:15Z")
        );
    }

    #[test]
    fn every_string_type_and_attribute_name() {
        let dc = DnType::CustomDnType(vec![0, 9, 2342, 19_200_300, 100, 1, 25]);
        let email = DnType::CustomDnType(vec![1, 2, 840, 113_549, 1, 9, 1]);
        let serial = DnType::CustomDnType(vec![2, 5, 4, 5]);
        let der = self_signed(&params(vec![
            (DnType::CommonName, utf8("Zürich Café 東京 🚀")),
            (
                DnType::OrganizationName,
                DnValue::BmpString(BmpString::try_from("Ünïcödé Ωmega").expect("bmp")),
            ),
            (
                DnType::OrganizationalUnitName,
                DnValue::Ia5String(Ia5String::try_from("ops@example").expect("ia5")),
            ),
            (
                DnType::CountryName,
                DnValue::PrintableString(PrintableString::try_from("CH").expect("printable")),
            ),
            (
                DnType::LocalityName,
                DnValue::TeletexString(TeletexString::try_from("Geneva").expect("t61")),
            ),
            (
                DnType::StateOrProvinceName,
                DnValue::UniversalString(
                    UniversalString::try_from("Österreich 🎉").expect("universal"),
                ),
            ),
            (
                dc,
                DnValue::Ia5String(Ia5String::try_from("example").expect("ia5")),
            ),
            (
                email,
                DnValue::Ia5String(Ia5String::try_from("pki@example.test").expect("ia5")),
            ),
            (serial, utf8("0042")),
        ]));
        let summary = CertSummary::from_der(&der).expect("summary");
        assert_eq!(
            summary.subject(),
            "CN=Zürich Café 東京 🚀, O=Ünïcödé Ωmega, OU=ops@example, C=CH, L=Geneva, \
             ST=Österreich 🎉, DC=example, emailAddress=pki@example.test, 2.5.4.5=0042"
        );
    }

    #[test]
    fn hand_made_names() {
        let cases: &[(&[Vec<u8>], &str)] = &[
            // A multi-valued RDN.
            (
                &[
                    attribute(CN, UTF8_STRING, b"a"),
                    attribute(O, PRINTABLE_STRING, b"b"),
                ],
                "CN=a+O=b",
            ),
            // RFC 4514 escapes, and a leading `#`.
            (
                &[attribute(
                    O,
                    UTF8_STRING,
                    b"#1 Example, Inc. <a+b;c> \"q\" \\",
                )],
                r##"O=\#1 Example\, Inc. \<a\+b\;c\> \"q\" \\"##,
            ),
            // T.61 as Latin-1.
            (
                &[attribute(CN, TELETEX_STRING, b"caf\xe9 \xa9")],
                "CN=café ©",
            ),
            // Bad UTF-8, a lone surrogate, an odd BMP byte, a code point
            // past U+10FFFF.
            (&[attribute(CN, UTF8_STRING, b"a\xffb")], "CN=a\u{fffd}b"),
            (
                &[attribute(CN, BMP_STRING, b"\x00a\xd8\x00\x00b\x00")],
                "CN=a\u{fffd}b\u{fffd}",
            ),
            (
                &[attribute(
                    CN,
                    UNIVERSAL_STRING,
                    b"\x00\x00\x00a\x00\x11\x00\x00",
                )],
                "CN=a\u{fffd}",
            ),
            // Control, bidirectional and line-separator characters dropped.
            (
                &[attribute(
                    CN,
                    UTF8_STRING,
                    "ev\u{202e}il\r\nname\u{7f}\u{85}\u{2028}\u{2066}.test\0".as_bytes(),
                )],
                "CN=evilname.test",
            ),
            // Unknown value types in hex; unknown attribute types dotted.
            (&[attribute(CN, 0x04, b"\xab\xcd")], "CN=#0402abcd"),
            (
                &[attribute(
                    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x02],
                    IA5_STRING,
                    b"x",
                )],
                "1.2.840.113549.1.9.2=x",
            ),
            (
                &[attribute(&[0x88, 0x37, 0x01], UTF8_STRING, b"x")],
                "2.999.1=x",
            ),
            (&[attribute(&[0x27], UTF8_STRING, b"x")], "0.39=x"),
            // An empty value.
            (&[attribute(CN, UTF8_STRING, b"")], "CN="),
        ];
        for (attributes, expected) in cases {
            assert_eq!(subject_of(attributes).as_deref(), Some(*expected));
        }
        // An empty name.
        let summary = CertSummary::from_der(&cert(false, &name(&[]), &utc_2026(), &name(&[])))
            .expect("summary");
        assert_eq!((summary.subject(), summary.issuer()), ("", ""));
        assert!(summary.is_self_signed());
    }

    #[test]
    fn long_names_are_cut_on_whole_units() {
        let long = "é".repeat(300);
        let subject = subject_of(&[attribute(CN, UTF8_STRING, long.as_bytes())]).expect("summary");
        assert_eq!(subject.chars().count(), MAX_NAME);
        assert_eq!(subject, format!("CN={}…", "é".repeat(MAX_NAME - 4)));

        // An escape and its character are never split: "CN=" and 126
        // escaped commas make 255 characters, then the cut.
        let commas = subject_of(&[attribute(CN, UTF8_STRING, &[b','; 300])]).expect("summary");
        assert_eq!(commas, format!("CN={}…", "\\,".repeat(126)));

        // The limit holds for many short attributes too.
        let many: Vec<_> = (0..100)
            .map(|_| attribute(O, UTF8_STRING, b"Example"))
            .collect();
        let subject = subject_of(&many).expect("summary");
        assert_eq!(subject.chars().count(), MAX_NAME);
        assert!(subject.starts_with("O=Example+O=Example+") && subject.ends_with('…'));

        // Real certificate, exactly at the limit: not cut.
        let cn = "x".repeat(MAX_NAME - 3);
        let der = self_signed(&params(vec![(DnType::CommonName, utf8(&cn))]));
        let summary = CertSummary::from_der(&der).expect("summary");
        assert_eq!(summary.subject(), format!("CN={cn}"));
    }

    #[test]
    fn times() {
        let name = name(&[rdn(&[attribute(CN, UTF8_STRING, b"t")])]);
        let read = |before: (u8, &str)| {
            let validity = validity(before, (UTC_TIME, "270101000000Z"));
            CertSummary::from_der(&cert(true, &name, &validity, &name)).map(|c| c.not_before())
        };
        let cases: &[((u8, &str), Option<u64>)] = &[
            ((UTC_TIME, "491231235959Z"), Some(2_524_607_999)),
            ((UTC_TIME, "700101000000Z"), Some(0)),
            ((UTC_TIME, "240229120000Z"), Some(1_709_208_000)),
            // 1950 to 1969: before the epoch, unknown.
            ((UTC_TIME, "500101000000Z"), None),
            ((GENERALIZED_TIME, "20260101000000Z"), Some(1_767_225_600)),
            (
                (GENERALIZED_TIME, "20260101000000.123Z"),
                Some(1_767_225_600),
            ),
            ((GENERALIZED_TIME, "20260101000000,5Z"), Some(1_767_225_600)),
            ((GENERALIZED_TIME, "99991231235959Z"), Some(253_402_300_799)),
            ((GENERALIZED_TIME, "19691231235959Z"), None),
            ((GENERALIZED_TIME, "20260101000000.Z"), None),
            ((GENERALIZED_TIME, "20260101000000+0100"), None),
            ((GENERALIZED_TIME, "202601010000Z"), None),
            ((UTC_TIME, "260101000000.5Z"), None),
            ((UTC_TIME, "261301000000Z"), None),
            ((UTC_TIME, "230229000000Z"), None),
            ((UTC_TIME, "260101240000Z"), None),
            ((UTC_TIME, "2601010000Z"), None),
            ((UTC_TIME, "26010100000aZ"), None),
            ((UTC_TIME, "2601010000 0Z"), None),
            ((UTC_TIME, "260101000000"), None),
            ((UTC_TIME, ""), None),
        ];
        for &(before, expected) in cases {
            assert_eq!(read(before), Some(expected.and_then(at)), "{before:?}");
        }
        // An unreadable time is shown as unknown.
        let validity = validity((UTC_TIME, "bad"), (GENERALIZED_TIME, "20270101000000Z"));
        let summary = CertSummary::from_der(&cert(true, &name, &validity, &name)).expect("summary");
        assert!(
            summary
                .to_string()
                .ends_with(" valid ?..2027-01-01T00:00:00Z")
        );
    }

    #[test]
    fn not_certificates() {
        let good = name(&[rdn(&[attribute(CN, UTF8_STRING, b"x")])]);
        assert!(CertSummary::from_der(&cert(false, &good, &utc_2026(), &good)).is_some());
        assert!(CertSummary::from_der(&cert(true, &good, &utc_2026(), &good)).is_some());

        let mut trailing = sample();
        trailing.push(0);
        let mut indefinite = sample();
        indefinite[1] = 0x80;
        let bad_names = [
            tlv(SEQUENCE, &tlv(SET, &[])),
            tlv(SEQUENCE, &tlv(SEQUENCE, &[])),
            name(&[rdn(&[tlv(SEQUENCE, &tlv(OID, CN))])]),
            name(&[rdn(&[tlv(
                SEQUENCE,
                &[tlv(OID, CN), tlv(UTF8_STRING, b"x"), tlv(UTF8_STRING, b"y")].concat(),
            )])]),
            name(&[rdn(&[attribute(&[0x55, 0x84], UTF8_STRING, b"x")])]),
            name(&[rdn(&[attribute(&[0x55, 0x80, 0x01], UTF8_STRING, b"x")])]),
            name(&[rdn(&[attribute(
                &[
                    0x55, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
                ],
                UTF8_STRING,
                b"x",
            )])]),
            name(&[rdn(&[attribute(&[], UTF8_STRING, b"x")])]),
            tlv(0x31, &[]),
        ];
        let mut inputs = vec![
            Vec::new(),
            b"not a certificate".to_vec(),
            trailing,
            indefinite,
            vec![0x30, 0x85, 0, 0, 0, 0, 1, 0],
            vec![0x3f, 0x01, 0x00],
            tlv(SEQUENCE, &[]),
            cert(
                false,
                &good,
                &validity((0x04, "260101000000Z"), (UTC_TIME, "270101000000Z")),
                &good,
            ),
            cert(
                false,
                &good,
                &tlv(SEQUENCE, &tlv(UTC_TIME, b"260101000000Z")),
                &good,
            ),
        ];
        for bad in &bad_names {
            inputs.push(cert(false, bad, &utc_2026(), &good));
            inputs.push(cert(false, &good, &utc_2026(), bad));
        }
        for input in inputs {
            assert_eq!(CertSummary::from_der(&input), None, "{input:02x?}");
        }
    }

    #[test]
    fn every_prefix_of_a_real_certificate_is_rejected() {
        let der = sample();
        assert!(CertSummary::from_der(&der).is_some());
        for n in 0..der.len() {
            assert_eq!(CertSummary::from_der(&der[..n]), None, "{n} bytes");
        }
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serializes_times_as_rfc3339() {
        let summary = CertSummary::from_der(&sample()).expect("summary");
        assert_eq!(
            serde_json::to_value(&summary).expect("json"),
            serde_json::json!({
                "subject": "CN=api.example.test, O=Example",
                "issuer": "CN=api.example.test, O=Example",
                "not_before": "2026-01-01T00:00:00Z",
                "not_after": "2027-01-01T00:00:00Z",
                "self_signed": true,
            })
        );
    }

    /// RFC 4514 escaping, as an oracle for generated names.
    fn escaped(value: &str) -> String {
        let mut out = String::new();
        for (i, c) in value.chars().enumerate() {
            if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') || (i == 0 && c == '#') {
                out.push('\\');
            }
            out.push(c);
        }
        out
    }

    proptest! {
        #[test]
        fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
            if let Some(summary) = CertSummary::from_der(&bytes) {
                assert_sane(&summary);
            }
        }

        #[test]
        fn a_real_certificate_mutated(
            flips in prop::collection::vec((any::<prop::sample::Index>(), 1..=255u8), 0..8),
            keep in any::<prop::sample::Index>(),
        ) {
            let mut der = sample();
            for (at, mask) in flips {
                let i = at.index(der.len());
                der[i] ^= mask;
            }
            let keep = keep.index(der.len() + 1);
            der.truncate(keep);
            if let Some(summary) = CertSummary::from_der(&der) {
                assert_sane(&summary);
            }
        }

        /// Any well-formed name renders, within the limit, on one line.
        #[test]
        fn any_well_formed_name(
            rdns in prop::collection::vec(
                prop::collection::vec(
                    (
                        prop::collection::vec(0u8..0x80, 1..6),
                        prop::sample::select(vec![UTF8_STRING, PRINTABLE_STRING, TELETEX_STRING, IA5_STRING, BMP_STRING, UNIVERSAL_STRING, 0x04, 0x05]),
                        prop::collection::vec(any::<u8>(), 0..80),
                    ),
                    1..4,
                ),
                0..12,
            ),
        ) {
            let rdns: Vec<_> = rdns
                .iter()
                .map(|atvs| {
                    rdn(&atvs.iter().map(|(oid, tag, value)| attribute(oid, *tag, value)).collect::<Vec<_>>())
                })
                .collect();
            let name = name(&rdns);
            let summary = CertSummary::from_der(&cert(false, &name, &utc_2026(), &name));
            prop_assert!(summary.is_some());
            let summary = summary.unwrap();
            assert_sane(&summary);
            prop_assert!(summary.is_self_signed());
            prop_assert_eq!(summary.subject().is_empty(), rdns.is_empty());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// rcgen-made certificates read back exactly.
        #[test]
        fn rcgen_round_trip(
            cn in "[\\p{L}\\p{N}\\p{P}\\p{S} ]{1,60}",
            o in "[a-zA-Z0-9 .,'-]{1,40}",
            before in 0u64..253_402_300_800,
            after in 0u64..253_402_300_800,
        ) {
            let mut params = params(vec![
                (DnType::CommonName, utf8(&cn)),
                (DnType::OrganizationName, utf8(&o)),
            ]);
            params.not_before = date_time_ymd(1970, 1, 1) + Duration::from_secs(before);
            params.not_after = date_time_ymd(1970, 1, 1) + Duration::from_secs(after);
            let summary = CertSummary::from_der(&self_signed(&params));
            prop_assert!(summary.is_some());
            let summary = summary.unwrap();
            let expected = format!("CN={}, O={}", escaped(&cn), escaped(&o));
            prop_assert_eq!(summary.subject(), expected.as_str());
            prop_assert_eq!(summary.not_before(), at(before));
            prop_assert_eq!(summary.not_after(), at(after));
        }
    }
}
