//! RFC 3339 times in UTC, as OCI annotations (`org.opencontainers.image.created`),
//! the Go vulnerability database (`modified`, Go's `time.Time` JSON) and
//! in-toto/sigstore documents write them: parsing to (seconds since the
//! epoch, nanoseconds) and formatting in UTC (civil-from-days, Howard
//! Hinnant's algorithms; no time-zone database needed).
//!
//! Owns: the text form of times. Must not: read the clock.

/// An RFC 3339 time as (seconds since the epoch, nanoseconds).
pub fn parse(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let d = b.get(r)?;
        if !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(d).ok()?.parse().ok()
    };
    let at = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(at(4, b"-") && at(7, b"-") && at(10, b"Tt") && at(13, b":") && at(16, b":")) {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 || n > 9 {
            return None;
        }
        nanos = frac[..n].parse::<u32>().ok()? * 10u32.pow(9 - n as u32);
        rest = &frac[n..];
    }
    let offset = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), ..] if rest.len() == 6 && at(s.len() - 3, b":") => {
            let oh: i64 = rest[1..3].parse().ok()?;
            let om: i64 = rest[4..6].parse().ok()?;
            let o = oh * 3600 + om * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let (yy, m) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + sec - offset, nanos))
}

/// Formats a time as Go's `time.Time` JSON does in UTC (RFC 3339, the
/// fraction without trailing zeros).
pub fn format((secs, nanos): (i64, u32)) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if nanos > 0 {
        let f = format!("{nanos:09}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_utc() {
        assert_eq!(format((0, 0)), "1970-01-01T00:00:00Z");
        assert_eq!(format((1_796_054_400, 0)), "2026-11-30T16:00:00Z");
        assert_eq!(format((951_782_400, 0)), "2000-02-29T00:00:00Z");
        assert_eq!(format((1, 120_000_000)), "1970-01-01T00:00:01.12Z");
        for s in [
            "2026-11-30T16:00:00Z",
            "2000-02-29T00:00:00Z",
            "1970-01-01T00:00:01.12Z",
        ] {
            assert_eq!(format(parse(s).unwrap()), s);
        }
        assert_eq!(
            parse("2026-11-30T17:00:00+01:00"),
            parse("2026-11-30T16:00:00Z")
        );
        for bad in [
            "2026-11-30",
            "2026-11-30 16:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-30T16:00:00",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
