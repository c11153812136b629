//! Reads a program's output pipe to its end, keeping at most a bounded amount: the beginning
//! and the end (where a parser or a person finds what went wrong), with a note in between
//! saying how much was cut. The pipe is always drained, so the program never blocks on it.

use std::collections::VecDeque;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The most kept of each of a program's stdout and stderr. Far above anything passbolt's
/// commands print (a healthcheck is ~10 KiB, a v1 `run all` ~50 KiB); it bounds what a broken
/// or hostile program can make the agent hold.
pub const OUTPUT_LIMIT: usize = 4 << 20;

/// Everything `pipe` gives until its end, or, past `limit` bytes, its first and last
/// `limit / 2` bytes around a line naming how many bytes were cut.
pub async fn read_bounded(
    pipe: Option<impl AsyncRead + Unpin>,
    limit: usize,
) -> std::io::Result<Vec<u8>> {
    let Some(mut pipe) = pipe else {
        return Ok(Vec::new());
    };
    let half = limit / 2;
    let mut head = Vec::new();
    let mut tail: VecDeque<u8> = VecDeque::new();
    let mut cut = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = pipe.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let mut chunk = &buf[..n];
        if head.len() < half {
            let take = chunk.len().min(half - head.len());
            head.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
        }
        tail.extend(chunk);
        if tail.len() > half {
            let over = tail.len() - half;
            tail.drain(..over);
            cut += over as u64;
        }
    }
    if cut > 0 {
        head.extend_from_slice(format!("\n[… {cut} bytes of output cut …]\n").as_bytes());
    }
    head.extend(tail);
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn short_output_is_kept_whole() {
        let text = b"one\ntwo\n".as_slice();
        assert_eq!(read_bounded(Some(text), 8).await.unwrap(), text);
        assert_eq!(
            read_bounded(None::<&[u8]>, 8).await.unwrap(),
            Vec::<u8>::new()
        );
    }

    #[tokio::test]
    async fn long_output_keeps_its_beginning_and_end() {
        let text: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let kept = read_bounded(Some(text.as_slice()), 1000).await.unwrap();
        let note = format!("\n[… {} bytes of output cut …]\n", text.len() - 1000);
        assert_eq!(kept.len(), 1000 + note.len());
        assert_eq!(&kept[..500], &text[..500]);
        assert_eq!(&kept[500..500 + note.len()], note.as_bytes());
        assert_eq!(&kept[500 + note.len()..], &text[text.len() - 500..]);
    }
}
