//! Rows made on one thread and used on another, so that parsing or merging
//! and SQLite (which one connection runs on one thread) use both cores.
//!
//! [`run`] calls the producer on a thread of its own with a [`Feed`]; rows
//! travel in batches of owned cells (text copied into one buffer per batch;
//! bounded in rows, cells and bytes) and reach the consumer, on the calling
//! thread, as borrowed values. At most [`DEPTH`] batches wait at once, so
//! memory stays bounded whatever the producer does. Errors keep row order: the consumer sees every row
//! fed before the producer failed, and the first error wins.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use rusqlite::types::ValueRef;

/// Rows a batch holds before it is sent.
pub const BATCH_ROWS: usize = 256;
/// Text and blob bytes a batch holds before it is sent (a row is never
/// split, so one larger row makes a larger batch).
pub const BATCH_BYTES: usize = 64 * 1024;
/// Values a batch holds before it is sent: a wide source (up to 2,000
/// columns) fills a batch before [`BATCH_ROWS`] rows.
pub const BATCH_CELLS: usize = 16 * 1024;
/// Batches sent and not yet used, at most.
pub const DEPTH: usize = 4;

/// The consumer stopped (it failed); the producer should return. The
/// consumer's error is the one reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the writer stopped")]
pub struct Stopped;

/// A value kept with rows whose text shares one buffer: text and blobs as
/// a range of it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Slot {
    Null,
    Integer(i64),
    Real(f64),
    Text(usize, usize),
    Blob(usize, usize),
}

impl Slot {
    /// `v`, its bytes (if any) appended to `bytes`.
    pub(super) fn store(v: ValueRef<'_>, bytes: &mut Vec<u8>) -> Self {
        let mut copy = |b: &[u8]| {
            let a = bytes.len();
            bytes.extend_from_slice(b);
            (a, a + b.len())
        };
        match v {
            ValueRef::Null => Slot::Null,
            ValueRef::Integer(n) => Slot::Integer(n),
            ValueRef::Real(f) => Slot::Real(f),
            ValueRef::Text(t) => {
                let (a, b) = copy(t);
                Slot::Text(a, b)
            }
            ValueRef::Blob(t) => {
                let (a, b) = copy(t);
                Slot::Blob(a, b)
            }
        }
    }

    /// The value, its bytes (if any) read from `bytes`.
    pub(super) fn read(self, bytes: &[u8]) -> ValueRef<'_> {
        let range = |a: usize, b: usize| bytes.get(a..b).unwrap_or_default();
        match self {
            Slot::Null => ValueRef::Null,
            Slot::Integer(n) => ValueRef::Integer(n),
            Slot::Real(f) => ValueRef::Real(f),
            Slot::Text(a, b) => ValueRef::Text(range(a, b)),
            Slot::Blob(a, b) => ValueRef::Blob(range(a, b)),
        }
    }
}

/// Rows as cells, with their text in one buffer.
#[derive(Debug, Default)]
struct Batch {
    cells: Vec<Slot>,
    bytes: Vec<u8>,
    /// Each row's tag and the end of its cells.
    rows: Vec<(u64, usize)>,
}

impl Batch {
    /// Empty the batch for reuse; buffers a large row grew past twice their
    /// bound are given back.
    fn clear(&mut self) {
        self.cells.clear();
        self.bytes.clear();
        self.rows.clear();
        self.cells.shrink_to(2 * BATCH_CELLS);
        self.bytes.shrink_to(2 * BATCH_BYTES);
    }

    fn full(&self) -> bool {
        self.rows.len() >= BATCH_ROWS
            || self.bytes.len() >= BATCH_BYTES
            || self.cells.len() >= BATCH_CELLS
    }

    fn value(&self, s: Slot) -> ValueRef<'_> {
        s.read(&self.bytes)
    }

    /// Call `consume` once with every row: its tag and values.
    fn with_rows<E>(&self, consume: &mut impl FnMut(&Rows<'_>) -> Result<(), E>) -> Result<(), E> {
        let values: Vec<ValueRef<'_>> = self.cells.iter().map(|&s| self.value(s)).collect();
        let mut rows = Vec::with_capacity(self.rows.len());
        let mut start = 0;
        for &(tag, end) in &self.rows {
            rows.push((tag, values.get(start..end).unwrap_or_default()));
            start = end;
        }
        consume(&rows)
    }
}

/// The producer's end: values are added to an open row, which
/// [`Feed::end_row`] closes and [`Feed::cancel_row`] drops.
#[derive(Debug)]
pub struct Feed {
    /// Where full batches go: to each in turn.
    full: Vec<SyncSender<Batch>>,
    turn: usize,
    free: Receiver<Batch>,
    batch: Batch,
    /// Where the open row's text starts.
    row_bytes: usize,
}

impl Feed {
    fn row_start(&self) -> usize {
        self.batch.rows.last().map_or(0, |r| r.1)
    }

    /// Add a value to the open row.
    pub fn value(&mut self, v: ValueRef<'_>) {
        let slot = Slot::store(v, &mut self.batch.bytes);
        self.batch.cells.push(slot);
    }

    /// The open row's `i`th value, if it has one.
    pub fn get(&self, i: usize) -> Option<ValueRef<'_>> {
        let at = self.row_start().checked_add(i)?;
        self.batch.cells.get(at).map(|&s| self.batch.value(s))
    }

    /// Drop the open row's values.
    pub fn cancel_row(&mut self) {
        let start = self.row_start();
        self.batch.cells.truncate(start);
        self.batch.bytes.truncate(self.row_bytes);
    }

    /// Close the open row, tagged `tag` for the consumer (a row number, a
    /// count), and send the batch when it is full.
    pub fn end_row(&mut self, tag: u64) -> Result<(), Stopped> {
        self.batch.rows.push((tag, self.batch.cells.len()));
        self.row_bytes = self.batch.bytes.len();
        if self.batch.full() {
            self.flush()?;
        }
        Ok(())
    }

    /// Add a whole row.
    pub fn push(&mut self, tag: u64, row: &[ValueRef<'_>]) -> Result<(), Stopped> {
        for v in row {
            self.value(*v);
        }
        self.end_row(tag)
    }

    /// Send the batch; called between rows (no row is open).
    fn flush(&mut self) -> Result<(), Stopped> {
        if self.batch.rows.is_empty() {
            return Ok(());
        }
        let next = self.free.try_recv().unwrap_or_default();
        self.row_bytes = 0;
        let sent = std::mem::replace(&mut self.batch, next);
        let to = self.full.get(self.turn).ok_or(Stopped)?;
        self.turn = (self.turn + 1) % self.full.len();
        to.send(sent).map_err(|_| Stopped)
    }
}

/// Rows as the consumer sees them: each one's tag and values.
pub type Rows<'a> = [(u64, &'a [ValueRef<'a>])];

/// Run `produce` on a thread of its own and `consume` on this one with
/// each row it feeds, in order, with its tag. The first error, in row order,
/// is returned: the consumer's if it failed on a row fed before the
/// producer failed. A panic on either side is passed on.
pub fn run<E: Send>(
    produce: impl FnOnce(&mut Feed) -> Result<(), E> + Send,
    mut consume: impl FnMut(u64, &[ValueRef<'_>]) -> Result<(), E>,
) -> Result<(), E> {
    run_batches(produce, |rows| {
        rows.iter().try_for_each(|&(tag, row)| consume(tag, row))
    })
}

/// [`run`], with `consume` called once a batch with its rows in order (for
/// statements that insert several rows at once).
pub fn run_batches<E: Send>(
    produce: impl FnOnce(&mut Feed) -> Result<(), E> + Send,
    mut consume: impl FnMut(&Rows<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let (full_tx, full_rx) = sync_channel::<Batch>(DEPTH);
    let (free_tx, free_rx) = sync_channel::<Batch>(DEPTH);
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || feed_all(vec![full_tx], free_rx, produce));
        let mut failed = None;
        while let Ok(mut batch) = full_rx.recv() {
            if let Err(e) = batch.with_rows(&mut consume) {
                failed = Some(e);
                break;
            }
            batch.clear();
            let _ = free_tx.try_send(batch);
        }
        // A producer still sending now gets `Stopped`.
        drop(full_rx);
        outcome(failed, producer.join())
    })
}

/// [`run_batches`] with the work split: each batch is turned into bytes by
/// `work` on one of `workers.len()` threads of their own (batches dealt to
/// them in turn, each worker with its own state), and `consume` gets each
/// batch's bytes on this thread, in batch order. Errors and panics are passed
/// on as by [`run`]: the first error in batch order wins. With no workers,
/// nothing is consumed and the producer is stopped.
pub fn run_worked<E: Send, W: Send>(
    produce: impl FnOnce(&mut Feed) -> Result<(), E> + Send,
    workers: Vec<W>,
    work: impl Fn(&mut W, &Rows<'_>, &mut Vec<u8>) -> Result<(), E> + Sync,
    mut consume: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let (free_tx, free_rx) = sync_channel::<Batch>(DEPTH * workers.len().max(1));
    let mut to_workers = Vec::new();
    let mut lanes = Vec::new();
    std::thread::scope(|scope| {
        let work = &work;
        let mut handles = Vec::new();
        for mut state in workers {
            let (batch_tx, batch_rx) = sync_channel::<Batch>(DEPTH);
            let (done_tx, done_rx) = sync_channel::<Result<Vec<u8>, E>>(DEPTH);
            let (back_tx, back_rx) = sync_channel::<Vec<u8>>(DEPTH);
            let free_tx = free_tx.clone();
            to_workers.push(batch_tx);
            lanes.push((done_rx, back_tx));
            handles.push(scope.spawn(move || {
                for batch in batch_rx {
                    let mut out = back_rx.try_recv().unwrap_or_default();
                    out.clear();
                    let worked = batch.with_rows(&mut |rows| work(&mut state, rows, &mut out));
                    let mut batch = batch;
                    batch.clear();
                    let _ = free_tx.try_send(batch);
                    let failed = worked.is_err();
                    if done_tx.send(worked.map(|()| out)).is_err() || failed {
                        break;
                    }
                }
            }));
        }
        drop(free_tx);
        let producer = scope.spawn(move || feed_all(to_workers, free_rx, produce));
        let mut failed = None;
        // Batch n is worker n's (mod their number) next; the first worker
        // with none left means there are no more.
        'batches: while !lanes.is_empty() {
            for (done, back) in &lanes {
                match done.recv() {
                    Ok(Ok(bytes)) => {
                        if let Err(e) = consume(&bytes) {
                            failed = Some(e);
                            break 'batches;
                        }
                        let _ = back.try_send(bytes);
                    }
                    Ok(Err(e)) => {
                        failed = Some(e);
                        break 'batches;
                    }
                    Err(_) => break 'batches,
                }
            }
        }
        // Workers and a producer still sending now stop.
        drop(lanes);
        for handle in handles {
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
        outcome(failed, producer.join())
    })
}

/// Run `produce` with a feed sending full batches to `full` in turn, then
/// send what it left: its rows fed before a failure are used too, so that
/// an error of theirs comes first.
fn feed_all<E>(
    full: Vec<SyncSender<Batch>>,
    free: Receiver<Batch>,
    produce: impl FnOnce(&mut Feed) -> Result<(), E>,
) -> Result<(), E> {
    let mut feed = Feed {
        full,
        turn: 0,
        free,
        batch: Batch::default(),
        row_bytes: 0,
    };
    let produced = produce(&mut feed);
    feed.cancel_row();
    // A consumer that stopped has its own error.
    let _ = feed.flush();
    produced
}

/// The first error in row order: the consumer's (`failed`), else the
/// producer's; a producer's panic is passed on.
fn outcome<E>(failed: Option<E>, produced: std::thread::Result<Result<(), E>>) -> Result<(), E> {
    match (failed, produced) {
        (Some(e), _) => Err(e),
        (None, Ok(produced)) => produced,
        (None, Err(panic)) => std::panic::resume_unwind(panic),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows the consumer saw (tag, values shown) and the outcome.
    type Seen = (Vec<(u64, Vec<String>)>, Result<(), String>);

    fn collect(
        produce: impl FnOnce(&mut Feed) -> Result<(), String> + Send,
        fail_at: Option<u64>,
    ) -> Seen {
        let mut seen = Vec::new();
        let r = run(produce, |tag, row| {
            if Some(tag) == fail_at {
                return Err(format!("consumer failed at {tag}"));
            }
            let shown = row
                .iter()
                .map(|v| match v {
                    ValueRef::Null => "null".to_owned(),
                    ValueRef::Integer(n) => n.to_string(),
                    ValueRef::Real(f) => f.to_string(),
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    ValueRef::Blob(b) => format!("blob{}", b.len()),
                })
                .collect();
            seen.push((tag, shown));
            Ok(())
        });
        (seen, r)
    }

    #[test]
    fn rows_arrive_in_order_across_batches_with_their_values() {
        let n = 3 * BATCH_ROWS as u64 + 7;
        let (seen, r) = collect(
            |feed| {
                for i in 0..n {
                    let text = format!("row {i}");
                    feed.push(
                        i,
                        &[
                            ValueRef::Integer(i as i64),
                            ValueRef::Text(text.as_bytes()),
                            ValueRef::Null,
                            ValueRef::Real(0.5),
                            ValueRef::Blob(&[1, 2, 3]),
                        ],
                    )
                    .map_err(|e| e.to_string())?;
                }
                Ok(())
            },
            None,
        );
        assert_eq!(r, Ok(()));
        assert_eq!(seen.len() as u64, n);
        for (i, (tag, row)) in seen.iter().enumerate() {
            assert_eq!(*tag, i as u64);
            assert_eq!(
                row,
                &[
                    i.to_string(),
                    format!("row {i}"),
                    "null".into(),
                    "0.5".into(),
                    "blob3".into()
                ]
            );
        }
    }

    #[test]
    fn a_cancelled_row_leaves_nothing_and_rows_may_be_built_value_by_value() {
        let (seen, r) = collect(
            |feed| {
                feed.value(ValueRef::Text(b"dropped"));
                feed.cancel_row();
                feed.value(ValueRef::Text(b"kept"));
                assert_eq!(feed.get(0), Some(ValueRef::Text(b"kept")));
                assert_eq!(feed.get(1), None);
                feed.end_row(9).map_err(|e| e.to_string())?;
                // An open row when the producer returns is not sent.
                feed.value(ValueRef::Integer(1));
                Ok(())
            },
            None,
        );
        assert_eq!(r, Ok(()));
        assert_eq!(seen, vec![(9, vec!["kept".to_owned()])]);
    }

    #[test]
    fn large_text_makes_a_batch_of_its_own() {
        let big = "x".repeat(BATCH_BYTES + 10);
        let (seen, r) = collect(
            |feed| {
                feed.push(1, &[ValueRef::Text(big.as_bytes())])
                    .map_err(|e| e.to_string())?;
                feed.push(2, &[ValueRef::Text(b"after")])
                    .map_err(|e| e.to_string())?;
                Ok(())
            },
            None,
        );
        assert_eq!(r, Ok(()));
        assert_eq!(
            seen,
            vec![(1, vec![big.clone()]), (2, vec!["after".to_owned()])]
        );
    }

    #[test]
    fn wide_rows_fill_a_batch_early_and_a_large_row_leaves_no_large_buffers() {
        let mut batch = Batch::default();
        let wide = 2000;
        let mut rows = 0;
        while !batch.full() {
            batch.cells.extend(std::iter::repeat_n(Slot::Null, wide));
            batch.rows.push((rows, batch.cells.len()));
            rows += 1;
        }
        assert_eq!(rows, BATCH_CELLS.div_ceil(wide) as u64);
        batch.bytes.extend(std::iter::repeat_n(b'x', 8 << 20));
        batch.clear();
        assert!(batch.bytes.capacity() <= 2 * BATCH_BYTES);
        assert!(batch.cells.capacity() <= 2 * BATCH_CELLS);
    }

    #[test]
    fn the_consumers_error_stops_the_producer_and_wins() {
        let mut stopped = false;
        let (seen, r) = collect(
            |feed| {
                for i in 0.. {
                    if feed.push(i, &[ValueRef::Integer(1)]).is_err() {
                        stopped = true;
                        return Err("producer saw the stop".into());
                    }
                }
                Ok(())
            },
            Some(5),
        );
        assert_eq!(r, Err("consumer failed at 5".to_owned()));
        assert_eq!(seen.len(), 5);
        assert!(stopped, "the producer was told to stop");
    }

    #[test]
    fn rows_fed_before_the_producer_failed_are_used_and_their_error_comes_first() {
        let produce = |feed: &mut Feed| {
            for i in 0..10 {
                feed.push(i, &[ValueRef::Integer(1)])
                    .map_err(|e| e.to_string())?;
            }
            Err("producer failed after 10".to_owned())
        };
        let (seen, r) = collect(produce, None);
        assert_eq!(r, Err("producer failed after 10".to_owned()));
        assert_eq!(seen.len(), 10);
        let (seen, r) = collect(produce, Some(3));
        assert_eq!(r, Err("consumer failed at 3".to_owned()));
        assert_eq!(seen.len(), 3);
    }

    #[test]
    #[should_panic(expected = "producer panicked")]
    fn a_producers_panic_is_passed_on() {
        let _ = collect(|_| panic!("producer panicked"), None);
    }

    /// The tags `consume` saw through [`run_worked`] with `workers` workers
    /// (each row's tag encoded by a worker), and the outcome.
    fn collect_worked(
        rows: u64,
        workers: usize,
        fail_work_at: Option<u64>,
        fail_consume_at: Option<u64>,
    ) -> (Vec<u64>, Result<(), String>) {
        let mut seen = Vec::new();
        let r = run_worked(
            |feed| {
                for i in 0..rows {
                    feed.push(i, &[ValueRef::Text(b"row")])
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            },
            (0..workers).map(|w| (w, 0u64)).collect(),
            |(_, worked), rows, out| {
                for &(tag, _) in rows {
                    if Some(tag) == fail_work_at {
                        return Err(format!("work failed at {tag}"));
                    }
                    *worked += 1;
                    out.extend_from_slice(&tag.to_le_bytes());
                }
                Ok(())
            },
            |bytes| {
                for tag in bytes.chunks(8) {
                    let tag = u64::from_le_bytes(tag.try_into().unwrap());
                    if Some(tag) == fail_consume_at {
                        return Err(format!("consumer failed at {tag}"));
                    }
                    seen.push(tag);
                }
                Ok(())
            },
        );
        (seen, r)
    }

    #[test]
    fn worked_batches_are_consumed_in_order_whatever_the_workers() {
        for workers in [1, 2, 3] {
            let (seen, r) = collect_worked(10_000, workers, None, None);
            assert_eq!(r, Ok(()));
            assert_eq!(seen, (0..10_000).collect::<Vec<_>>(), "{workers} workers");
        }
    }

    #[test]
    fn a_workers_error_comes_after_the_rows_before_it() {
        let (seen, r) = collect_worked(10_000, 2, Some(3000), None);
        assert_eq!(r, Err("work failed at 3000".to_owned()));
        // Its whole batch is lost, no row after it is consumed.
        assert!(seen.len() <= 3000 && seen.len() + BATCH_ROWS > 3000);
        assert_eq!(seen, (0..seen.len() as u64).collect::<Vec<_>>());
        let (seen, r) = collect_worked(10_000, 2, Some(3000), Some(100));
        assert_eq!(r, Err("consumer failed at 100".to_owned()));
        assert_eq!(seen.len(), 100);
    }

    #[test]
    fn the_producers_error_comes_after_every_row_it_fed() {
        let mut fed = 0;
        let r = run_worked(
            |feed| {
                for i in 0..1000 {
                    feed.push(i, &[ValueRef::Integer(1)])
                        .map_err(|e| e.to_string())?;
                }
                Err("producer failed after 1000".to_owned())
            },
            vec![(), ()],
            |(), rows, out| {
                out.extend_from_slice(&(rows.len() as u64).to_le_bytes());
                Ok(())
            },
            |bytes| {
                fed += u64::from_le_bytes(bytes.try_into().unwrap());
                Ok(())
            },
        );
        assert_eq!(r, Err("producer failed after 1000".to_owned()));
        assert_eq!(fed, 1000);
    }

    #[test]
    fn no_workers_stop_the_producer() {
        let r = run_worked(
            |feed| {
                for i in 0..1000 {
                    feed.push(i, &[ValueRef::Integer(1)])
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            },
            Vec::<()>::new(),
            |(), _, _| Ok(()),
            |_| Err("nothing to consume".to_owned()),
        );
        assert_eq!(r, Err("the writer stopped".to_owned()));
    }

    #[test]
    #[should_panic(expected = "worker panicked")]
    fn a_workers_panic_is_passed_on() {
        let _ = run_worked(
            |feed| {
                for i in 0..1000 {
                    feed.push(i, &[ValueRef::Integer(1)])
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            },
            vec![0, 1],
            |w, _, _| match *w {
                1 => panic!("worker panicked"),
                _ => Ok::<(), String>(()),
            },
            |_| Ok(()),
        );
    }
}
