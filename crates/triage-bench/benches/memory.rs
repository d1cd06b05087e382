//! Memory and throughput of large streamed bodies through `Triage`.
//!
//! A hyper HTTP/1.1 server on 127.0.0.1 in the same process (keep-alive)
//!
//! - (a) streams a 1 GiB response body (32 MiB with `--smoke`) in 64 KiB
//!   chunks; the client reads it to the end frame by frame
//!   (`BodyExt::frame`, never `collect`) and checks the byte count;
//! - (b) reads and discards a 1 GiB streaming request body (32 MiB with
//!   `--smoke`) and answers 200 with the byte count it received, which the
//!   client checks. Through `Triage` (retries on, default rules) the body is
//!   a `ReplayBody`, which keeps at most 64 KiB for a replay.
//!
//! Each transfer is made through `Triage` around a hyper-util `Client`, and
//! through the same bare client (the baseline, in the same run). Peak RSS
//! growth: the high-water mark is reset (`5` written to
//! `/proc/self/clear_refs`) before each transfer, and growth is `VmHWM`
//! after minus `VmRSS` before (server and client share the process, so both
//! sides count, alike for both clients). Target: growth under 16 MiB. Also
//! throughput in MiB/s. Every figure is given as a ratio to the bare client.
//! Full mode runs each transfer 5 times, interleaved; the table shows the
//! largest growth and the median throughput.
//!
//! A control row checks that the measurement sees buffering: the bare
//! client's download of 64 MiB (32 MiB with `--smoke`) gathered with
//! `collect()` must grow the peak by about that much.
//!
//! Run: `cargo bench -p triage-bench --bench memory` (under a minute), or
//! with `-- --smoke` for a seconds-long check.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceExt};
use tower_triage::TriageLayer;
use tower_triage::body::ReplayBody;

const MIB: u64 = 1024 * 1024;
/// Bytes per transfer in full mode.
const SIZE: u64 = 1024 * MIB;
/// Bytes per transfer with `--smoke`.
const SMOKE_SIZE: u64 = 32 * MIB;
/// Chunk size of both streams.
const CHUNK: usize = 64 * 1024;
/// Rounds in full mode.
const ROUNDS: usize = 5;
/// Target: peak RSS growth, MiB.
const TARGET_MIB: f64 = 16.0;

/// A body of `left` bytes in `CHUNK`-sized frames, all slices of one shared
/// buffer (no allocation per frame).
#[derive(Debug)]
struct Chunks {
    left: u64,
    chunk: Bytes,
}

impl Chunks {
    fn new(len: u64) -> Chunks {
        let chunk: Vec<u8> = (0..CHUNK as u64)
            .map(triage_testkit::pattern_byte)
            .collect();
        Chunks {
            left: len,
            chunk: Bytes::from(chunk),
        }
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.left == 0 {
            return Poll::Ready(None);
        }
        let n = this.left.min(this.chunk.len() as u64) as usize;
        this.left -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(this.chunk.slice(..n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// Reads a body to its end frame by frame; the data bytes seen.
async fn drain<B>(mut body: B, limit: u64) -> Result<u64, String>
where
    B: Body + Unpin,
    B::Error: std::fmt::Display,
{
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("body failed after {n} bytes: {e}"))?;
        if let Some(data) = frame.data_ref() {
            n += bytes::Buf::remaining(data) as u64;
        }
        if n > limit {
            return Err(format!("more than the {limit} bytes expected"));
        }
    }
    Ok(n)
}

/// The server: `GET /download/{n}` streams `n` bytes; `POST /upload` reads
/// and discards the body and answers its length in `x-received`.
async fn serve(
    request: Request<Incoming>,
) -> Result<Response<http_body_util::Either<Chunks, Full<Bytes>>>, Infallible> {
    use http_body_util::Either;
    let path = request.uri().path().to_owned();
    if let Some(n) = path.strip_prefix("/download/") {
        let n: u64 = n.parse().unwrap_or(0);
        return Ok(Response::builder()
            .header("content-type", "application/octet-stream")
            .body(Either::Left(Chunks::new(n)))
            .expect("response"));
    }
    if path == "/upload" {
        let received = drain(request.into_body(), u64::MAX).await;
        let (status, received) = match received {
            Ok(n) => (200, n.to_string()),
            Err(e) => (500, e),
        };
        return Ok(Response::builder()
            .status(status)
            .header("x-received", received)
            .body(Either::Right(Full::new(Bytes::new())))
            .expect("response"));
    }
    Ok(Response::builder()
        .status(404)
        .body(Either::Right(Full::new(Bytes::new())))
        .expect("response"))
}

async fn start_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(serve))
                    .await;
            });
        }
    });
    addr
}

/// `VmHWM` and `VmRSS`, in KiB.
fn vm() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Resets the high-water mark to the current RSS.
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("write /proc/self/clear_refs");
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    growth_mib: f64,
    mib_per_s: f64,
}

/// Measures one transfer: peak RSS growth and throughput.
async fn sample<F: std::future::Future<Output = ()>>(size: u64, transfer: F) -> Sample {
    reset_peak();
    let (_, rss_before) = vm();
    let start = Instant::now();
    transfer.await;
    let elapsed = start.elapsed();
    let (hwm_after, _) = vm();
    Sample {
        growth_mib: hwm_after.saturating_sub(rss_before) as f64 / 1024.0,
        mib_per_s: size as f64 / MIB as f64 / elapsed.max(Duration::from_nanos(1)).as_secs_f64(),
    }
}

async fn download<S, B>(svc: S, uri: String, size: u64, who: &str)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body + Unpin,
    B::Error: std::fmt::Display,
{
    let request = Request::get(uri)
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = svc.oneshot(request).await.unwrap_or_else(|e| {
        panic!("{who}: the download failed: {e:?}");
    });
    assert_eq!(response.status(), 200, "{who}: download status");
    let got = drain(response.into_body(), size)
        .await
        .unwrap_or_else(|e| panic!("{who}: download: {e}"));
    assert_eq!(got, size, "{who}: downloaded {got} bytes of {size}");
}

async fn upload<S, Q, B>(svc: S, uri: String, body: Q, size: u64, who: &str)
where
    S: Service<Request<Q>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body + Unpin,
    B::Error: std::fmt::Display,
{
    let request = Request::post(uri).body(body).expect("request");
    let response = svc.oneshot(request).await.unwrap_or_else(|e| {
        panic!("{who}: the upload failed: {e:?}");
    });
    let status = response.status();
    let received = response
        .headers()
        .get("x-received")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_default();
    let _ = drain(response.into_body(), 1024).await;
    assert_eq!(status, 200, "{who}: upload status ({received})");
    assert_eq!(
        received,
        size.to_string(),
        "{who}: the server received {received} bytes of {size}"
    );
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[derive(Debug, Default)]
struct Series(Vec<Sample>);

impl Series {
    fn growth(&self) -> f64 {
        self.0.iter().map(|s| s.growth_mib).fold(0.0, f64::max)
    }
    fn throughput(&self) -> f64 {
        median(self.0.iter().map(|s| s.mib_per_s).collect())
    }
}

fn ratio(value: f64, base: f64) -> String {
    if base > 0.0 {
        format!("{:.2}x", value / base)
    } else {
        "n/a (bare 0)".to_owned()
    }
}

fn main() {
    let smoke = triage_bench::smoke();
    let size = if smoke { SMOKE_SIZE } else { SIZE };
    let rounds = if smoke { 1 } else { ROUNDS };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        println!(
            "memory: {} MiB streamed each way in {} KiB chunks over loopback, {rounds} round(s), server in the same process{}",
            size / MIB,
            CHUNK / 1024,
            if smoke { " (smoke)" } else { "" }
        );
        println!();
        let addr = start_server().await;
        let down_uri = format!("http://svc.test:{}/download/{size}", addr.port());
        let up_uri = format!("http://svc.test:{}/upload", addr.port());
        let resolver = triage_testkit::Resolver::new();
        let connector = tower_triage::connect::tagged_connector(resolver);

        let down_bare = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector.clone());
        let down_triage = TriageLayer::new().layer(down_bare.clone());
        let up_bare = Client::builder(TokioExecutor::new()).build::<_, Chunks>(connector.clone());
        let up_client =
            Client::builder(TokioExecutor::new()).build::<_, ReplayBody<Chunks>>(connector);
        let up_triage = TriageLayer::new().layer(up_client);

        // Warm up every path (connections, buffers, allocator arenas) with a
        // small transfer, so that neither client pays for first use.
        let warm = 4 * MIB;
        let warm_down = format!("http://svc.test:{}/download/{warm}", addr.port());
        download(down_bare.clone(), warm_down.clone(), warm, "bare").await;
        download(down_triage.clone(), warm_down, warm, "triage").await;
        upload(up_bare.clone(), up_uri.clone(), Chunks::new(warm), warm, "bare").await;
        upload(
            up_triage.clone(),
            up_uri.clone(),
            ReplayBody::new(Chunks::new(warm)),
            warm,
            "triage",
        )
        .await;

        let (mut db, mut dt, mut ub, mut ut) = (
            Series::default(),
            Series::default(),
            Series::default(),
            Series::default(),
        );
        for _ in 0..rounds {
            db.0.push(sample(size, download(down_bare.clone(), down_uri.clone(), size, "bare")).await);
            dt.0.push(
                sample(size, download(down_triage.clone(), down_uri.clone(), size, "triage"))
                    .await,
            );
            ub.0.push(
                sample(
                    size,
                    upload(up_bare.clone(), up_uri.clone(), Chunks::new(size), size, "bare"),
                )
                .await,
            );
            ut.0.push(
                sample(
                    size,
                    upload(
                        up_triage.clone(),
                        up_uri.clone(),
                        ReplayBody::new(Chunks::new(size)),
                        size,
                        "triage",
                    ),
                )
                .await,
            );
        }

        // The control: buffering a whole body must show.
        let control_size = size.min(64 * MIB);
        let control_uri = format!("http://svc.test:{}/download/{control_size}", addr.port());
        let control = sample(control_size, async {
            let request = Request::get(control_uri)
                .body(Full::new(Bytes::new()))
                .expect("request");
            let response = down_bare.clone().oneshot(request).await.expect("control download");
            let body = response.into_body().collect().await.expect("control body").to_bytes();
            assert_eq!(body.len() as u64, control_size, "control: bytes");
            drop(body);
        })
        .await;

        println!(
            "| transfer | client | peak RSS growth MiB | vs bare | throughput MiB/s | vs bare | target (growth < {TARGET_MIB} MiB) |"
        );
        println!("|---|---|---|---|---|---|---|");
        for (what, bare, triage) in [
            ("download (response body)", &db, &dt),
            ("upload (request body)", &ub, &ut),
        ] {
            for (who, series) in [("bare hyper-util client", bare), ("triage (retries on)", triage)] {
                let growth = series.growth();
                let verdict = if growth < TARGET_MIB {
                    "target met"
                } else {
                    "TARGET MISSED"
                };
                println!(
                    "| {what} | {who} | {growth:.1} | {} | {:.0} | {} | {verdict} |",
                    ratio(growth, bare.growth()),
                    series.throughput(),
                    ratio(series.throughput(), bare.throughput()),
                );
            }
        }
        println!(
            "| control: {} MiB download gathered with collect() | bare hyper-util client | {:.1} | {} | {:.0} | {} | n/a (must grow ~{} MiB) |",
            control_size / MIB,
            control.growth_mib,
            ratio(control.growth_mib, db.growth()),
            control.mib_per_s,
            ratio(control.mib_per_s, db.throughput()),
            control_size / MIB,
        );
        println!();
        if control.growth_mib < control_size as f64 / MIB as f64 / 2.0 {
            println!(
                "note: the control grew only {:.1} MiB: the RSS measurement may not see heap growth here",
                control.growth_mib
            );
        }
        println!(
            "Growth is the largest over the rounds, throughput the median. Both ends run in this \
             process, so the server's buffers count too, alike for both clients."
        );
    });
}
