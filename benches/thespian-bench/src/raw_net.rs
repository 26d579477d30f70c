//! The physical limits of the cross-process workloads (`raw-net`): plain std sockets on
//! 127.0.0.1 between this process and a helper process (this binary, re-executed in a helper
//! role), and plain fork+exec. No actor system, no event loop: blocking sockets, the cheapest
//! way to move bytes between two processes.
//!
//! - TCP: length-prefixed frames (`u32` little-endian length, then the bytes), `TCP_NODELAY`;
//!   ping-pong and ask echo an 8-byte frame; the one-way tell uses the actors' protocol (the
//!   same window and acknowledgements) with buffered writes, i.e. batching.
//! - UDP: one datagram per message; ping-pong resends a ping lost for 100 ms; the one-way tell
//!   uses the same window and acknowledgements (cumulative counts) and writes off what is
//!   unacknowledged for 20 ms, so a lost datagram costs time instead of hanging the run; the
//!   datagrams lost are reported (`lost`).
//! - Process creation: spawn this binary in a no-op role and wait for it.

use std::io::{BufRead, BufReader, BufWriter, ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, Outcome, PATIENCE};
use crate::net::{tell_outcome, NetWorkload, Transport};

/// Environment variable naming a helper role: `<role> <address>`.
const HELPER_ENV: &str = "THESPIAN_BENCH_HELPER";

/// How long a helper may take to connect.
const CONNECT_PATIENCE: Duration = Duration::from_secs(20);

/// Runs a raw workload.
pub(crate) fn run(workload: NetWorkload, size: u64) -> Outcome {
    let result = match workload {
        NetWorkload::TcpPingPong => tcp_ping_pong(size, false),
        NetWorkload::TcpAsk => tcp_ping_pong(size, true),
        NetWorkload::TcpTell16 | NetWorkload::TcpTell64k => tcp_tell(size, workload),
        NetWorkload::TcpCreate => spawn_rate(size),
        NetWorkload::UdpPingPong => udp_ping_pong(size),
        NetWorkload::UdpTell16 => udp_tell(size, workload),
    };
    result.unwrap_or_else(|e| common::fail(e))
}

type Res<T> = Result<T, String>;

fn io<T>(what: &str, r: std::io::Result<T>) -> Res<T> {
    r.map_err(|e| format!("{what}: {e}"))
}

/// A helper process, killed and reaped when dropped.
struct Helper(Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_helper(role: &str) -> Res<Helper> {
    let exe = io("this program", std::env::current_exe())?;
    let child = Command::new(exe)
        .env(HELPER_ENV, role)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn();
    Ok(Helper(io("spawning a helper", child)?))
}

// ---------------------------------------------------------------------------------------------
// Helper roles (in the re-executed process).

/// Runs the helper role this process was started in, if any; then exits.
pub(crate) fn helper_if_any() {
    let Ok(spec) = std::env::var(HELPER_ENV) else {
        return;
    };
    let mut words = spec.split_whitespace();
    let role = words.next().unwrap_or_default();
    if role == "noop" {
        std::process::exit(0);
    }
    let addr: Option<SocketAddr> = words.next().and_then(|a| a.parse().ok());
    let Some(addr) = addr else {
        eprintln!("thespian-bench helper: bad {HELPER_ENV}={spec:?}");
        std::process::exit(2);
    };
    let result = match role {
        "tcp-echo" => tcp_echo(addr),
        "tcp-produce" => tcp_produce(addr),
        "udp-echo" => udp_helper(addr, false),
        "udp-produce" => udp_helper(addr, true),
        other => Err(format!("unknown helper role {other:?}")),
    };
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("thespian-bench helper {role}: {e}");
            std::process::exit(1)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TCP.

/// Writes one frame.
fn write_frame(w: &mut impl Write, payload: &[u8]) -> std::io::Result<()> {
    w.write_all(&(payload.len() as u32).to_le_bytes())?;
    w.write_all(payload)
}

/// Reads one frame into `buf`; `Ok(false)` at a clean end of stream.
fn read_frame(r: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    buf.resize(u32::from_le_bytes(len) as usize, 0);
    r.read_exact(buf)?;
    Ok(true)
}

/// A connected pair: this process's end of a connection from a new helper in `role`.
fn tcp_pair(role: &str) -> Res<(Helper, TcpStream)> {
    let listener = io("bind", TcpListener::bind("127.0.0.1:0"))?;
    let addr = io("local address", listener.local_addr())?;
    let mut helper = spawn_helper(&format!("{role} {addr}"))?;
    io("listener", listener.set_nonblocking(true))?;
    let deadline = Instant::now() + CONNECT_PATIENCE;
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if let Ok(Some(status)) = helper.0.try_wait() {
                    return Err(format!("the helper exited before connecting: {status}"));
                }
                if Instant::now() > deadline {
                    return Err("the helper did not connect".into());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    };
    io("blocking", stream.set_nonblocking(false))?;
    io("nodelay", stream.set_nodelay(true))?;
    io("timeout", stream.set_read_timeout(Some(PATIENCE)))?;
    Ok((helper, stream))
}

fn tcp_connect(addr: SocketAddr) -> Res<TcpStream> {
    let stream = io("connect", TcpStream::connect(addr))?;
    io("nodelay", stream.set_nodelay(true))?;
    Ok(stream)
}

/// Helper: echoes every frame until the connection ends.
fn tcp_echo(addr: SocketAddr) -> Res<()> {
    let stream = tcp_connect(addr)?;
    let mut reader = BufReader::new(io("clone", stream.try_clone())?);
    let mut writer = stream;
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while io("read", read_frame(&mut reader, &mut buf))? {
        out.clear();
        out.extend_from_slice(&(buf.len() as u32).to_le_bytes());
        out.extend_from_slice(&buf);
        io("write", writer.write_all(&out))?;
    }
    Ok(())
}

/// Ping-pong (or ask, with each round trip timed) against an echoing helper.
fn tcp_ping_pong(size: u64, ask: bool) -> Res<Outcome> {
    let (_helper, stream) = tcp_pair("tcp-echo")?;
    let mut reader = BufReader::new(io("clone", stream.try_clone())?);
    let mut writer = stream;
    let mut buf = Vec::new();
    let mut round = |n: u64| -> Res<(Vec<Duration>, Duration)> {
        let mut latencies = Vec::with_capacity(if ask { n as usize } else { 0 });
        let mut frame = [0u8; 12];
        frame[..4].copy_from_slice(&8u32.to_le_bytes());
        let start = Instant::now();
        for i in 0..n {
            let t = Instant::now();
            frame[4..].copy_from_slice(&i.to_le_bytes());
            io("write", writer.write_all(&frame))?;
            if !io("read", read_frame(&mut reader, &mut buf))? || buf[..] != frame[4..] {
                return Err("echo mismatch".into());
            }
            if ask {
                latencies.push(t.elapsed());
            }
        }
        Ok((latencies, start.elapsed()))
    };
    round(common::warmup(size))?;
    let (latencies, elapsed) = round(size)?;
    Ok(if ask {
        common::ask(latencies, elapsed)
    } else {
        common::rate(size, elapsed)
    })
}

/// Start of a one-way round: `n`, message size, window, batch (4 × u64 little-endian).
fn start_frame(n: u64, size: usize, window: u64, batch: u64) -> Vec<u8> {
    [n, size as u64, window, batch]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

fn u64_at(buf: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[i * 8..i * 8 + 8]);
    u64::from_le_bytes(b)
}

/// Helper: the producer of the one-way tell. Frames from this process's side: a start (32
/// bytes) or an acknowledgement (8 bytes: how many more may be sent).
fn tcp_produce(addr: SocketAddr) -> Res<()> {
    let stream = tcp_connect(addr)?;
    let mut reader = BufReader::new(io("clone", stream.try_clone())?);
    let mut writer = BufWriter::with_capacity(64 * 1024, stream);
    let mut buf = Vec::new();
    while io("read", read_frame(&mut reader, &mut buf))? {
        if buf.len() != 32 {
            continue; // A late acknowledgement of an earlier round.
        }
        let (mut remaining, size) = (u64_at(&buf, 0), u64_at(&buf, 1) as usize);
        let mut credit = u64_at(&buf, 2);
        let data = vec![1u8; size];
        while remaining > 0 {
            let now = credit.min(remaining);
            for _ in 0..now {
                io("write", write_frame(&mut writer, &data))?;
            }
            io("flush", writer.flush())?;
            remaining -= now;
            credit -= now;
            // Wait for an acknowledgement when the window is spent, and take every one that
            // has already arrived.
            while remaining > 0 && (credit == 0 || !reader.buffer().is_empty()) {
                if !io("read", read_frame(&mut reader, &mut buf))? {
                    return Ok(());
                }
                if buf.len() == 8 {
                    credit += u64_at(&buf, 0);
                }
            }
        }
    }
    Ok(())
}

/// One-way tell: the helper produces, this process consumes and times until the last frame.
fn tcp_tell(size: u64, workload: NetWorkload) -> Res<Outcome> {
    let bytes = workload.tell_size();
    let (window, batch) = workload.window();
    let (_helper, stream) = tcp_pair("tcp-produce")?;
    let mut reader = BufReader::with_capacity(256 * 1024, io("clone", stream.try_clone())?);
    let mut writer = stream;
    let mut buf = Vec::with_capacity(bytes);
    let mut round = |n: u64| -> Res<Duration> {
        let start = Instant::now();
        io(
            "write",
            write_frame(&mut writer, &start_frame(n, bytes, window, batch)),
        )?;
        let mut checksum = 0u64;
        let mut since_ack = 0;
        for got in 1..=n {
            if !io("read", read_frame(&mut reader, &mut buf))? {
                return Err("the producer hung up".into());
            }
            checksum += u64::from(buf.last().copied().unwrap_or(0));
            since_ack += 1;
            if since_ack == batch && got != n {
                since_ack = 0;
                io("write", write_frame(&mut writer, &batch.to_le_bytes()))?;
            }
        }
        let elapsed = start.elapsed();
        if checksum != n {
            return Err(format!("consumer counted {checksum} of {n}"));
        }
        Ok(elapsed)
    };
    round(common::warmup(size))?;
    let elapsed = round(size)?;
    Ok(tell_outcome(size, bytes, elapsed))
}

// ---------------------------------------------------------------------------------------------
// Process creation.

/// fork+exec of this binary in a no-op role, waited for, `size` times.
fn spawn_rate(size: u64) -> Res<Outcome> {
    let exe = io("this program", std::env::current_exe())?;
    let round = |n: u64| -> Res<Duration> {
        let start = Instant::now();
        for _ in 0..n {
            let status = Command::new(&exe)
                .env(HELPER_ENV, "noop")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .status();
            let status = io("spawn", status)?;
            if !status.success() {
                return Err(format!("the no-op helper failed: {status}"));
            }
        }
        Ok(start.elapsed())
    };
    round(common::warmup(size))?;
    let elapsed = round(size)?;
    Ok(common::rate(size, elapsed))
}

// ---------------------------------------------------------------------------------------------
// UDP. Datagrams: kind byte, round byte, body.

const HELLO: u8 = 0;
const PING: u8 = 1;
const START: u8 = 2;
const DATA: u8 = 3;
const ACK: u8 = 4;
const FIN: u8 = 5;
const FIN_ACK: u8 = 6;
const BYE: u8 = 7;

/// How long an unanswered ping waits before it is sent again.
const PING_RESEND: Duration = Duration::from_millis(100);
/// How long the producer waits for an acknowledgement before writing off what is in flight.
const WRITE_OFF: Duration = Duration::from_millis(20);

/// This process's socket, connected to a new helper in `role` (which says hello first).
fn udp_pair(role: &str) -> Res<(Helper, UdpSocket)> {
    let socket = io("bind", UdpSocket::bind("127.0.0.1:0"))?;
    let addr = io("local address", socket.local_addr())?;
    let mut helper = spawn_helper(&format!("{role} {addr}"))?;
    io(
        "timeout",
        socket.set_read_timeout(Some(Duration::from_millis(50))),
    )?;
    let deadline = Instant::now() + CONNECT_PATIENCE;
    let mut buf = [0u8; 64];
    loop {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) if n >= 1 && buf[0] == HELLO => {
                io("connect", socket.connect(from))?;
                return Ok((helper, socket));
            }
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if let Ok(Some(status)) = helper.0.try_wait() {
                    return Err(format!("the helper exited before saying hello: {status}"));
                }
                if Instant::now() > deadline {
                    return Err("the helper did not say hello".into());
                }
            }
            Err(e) => return Err(format!("recv: {e}")),
        }
    }
}

fn timed_out(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Helper: echoes pings (`produce`: produces one-way rounds) until told bye or orphaned.
fn udp_helper(addr: SocketAddr, produce: bool) -> Res<()> {
    let parent = std::os::unix::process::parent_id();
    let socket = io("bind", UdpSocket::bind("127.0.0.1:0"))?;
    io("connect", socket.connect(addr))?;
    io(
        "timeout",
        socket.set_read_timeout(Some(Duration::from_millis(200))),
    )?;
    io("hello", socket.send(&[HELLO, 0]))?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if timed_out(&e) => {
                if std::os::unix::process::parent_id() != parent {
                    return Ok(());
                }
                continue;
            }
            // The parent's socket is gone (ICMP port unreachable).
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return Ok(()),
            Err(e) => return Err(format!("recv: {e}")),
        };
        match buf.first() {
            Some(&PING) if !produce => {
                let _ = socket.send(&buf[..n]);
            }
            Some(&START) if produce && n == 2 + 32 => {
                let round = buf[1];
                let body = buf[2..n].to_vec();
                udp_produce(&socket, round, &body)?;
            }
            Some(&BYE) => return Ok(()),
            _ => {} // Late datagrams of an earlier round.
        }
    }
}

/// Helper: one round of the one-way tell.
fn udp_produce(socket: &UdpSocket, round: u8, start: &[u8]) -> Res<()> {
    let (n, size) = (u64_at(start, 0), u64_at(start, 1) as usize);
    let window = u64_at(start, 2);
    let mut data = vec![1u8; 2 + size];
    data[0] = DATA;
    data[1] = round;
    io("timeout", socket.set_read_timeout(Some(WRITE_OFF)))?;
    let mut buf = [0u8; 64];
    let (mut sent, mut acked, mut written_off) = (0u64, 0u64, 0u64);
    loop {
        while sent < n && sent - acked.max(written_off) < window {
            io("send", socket.send(&data))?;
            sent += 1;
        }
        if sent == n {
            break;
        }
        // The window is spent: wait for an acknowledgement.
        match socket.recv(&mut buf) {
            Ok(len) if len == 10 && buf[0] == ACK && buf[1] == round => {
                acked = acked.max(u64_at(&buf[2..], 0));
            }
            Ok(_) => {}
            // Nothing for WRITE_OFF: what is in flight is lost.
            Err(e) if timed_out(&e) => written_off = sent,
            Err(e) => return Err(format!("recv: {e}")),
        }
    }
    // Everything sent: tell the consumer, until it answers.
    let mut fin = vec![FIN, round];
    fin.extend_from_slice(&sent.to_le_bytes());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        io("send", socket.send(&fin))?;
        match socket.recv(&mut buf) {
            Ok(len) if len >= 2 && buf[0] == FIN_ACK && buf[1] == round => break,
            Ok(_) => {}
            Err(e) if timed_out(&e) => {}
            Err(e) => return Err(format!("recv: {e}")),
        }
        if Instant::now() > deadline {
            return Err("the consumer never acknowledged the end of the round".into());
        }
    }
    io(
        "timeout",
        socket.set_read_timeout(Some(Duration::from_millis(200))),
    )
}

fn udp_ping_pong(size: u64) -> Res<Outcome> {
    let (_helper, socket) = udp_pair("udp-echo")?;
    io("timeout", socket.set_read_timeout(Some(PING_RESEND)))?;
    let mut resent = 0u64;
    let mut round = |n: u64| -> Res<Duration> {
        let mut ping = [0u8; 10];
        ping[0] = PING;
        let mut buf = [0u8; 64];
        let start = Instant::now();
        for i in 0..n {
            ping[2..].copy_from_slice(&i.to_le_bytes());
            io("send", socket.send(&ping))?;
            loop {
                match socket.recv(&mut buf) {
                    Ok(10) if buf[..10] == ping => break,
                    Ok(_) => {}
                    Err(e) if timed_out(&e) => {
                        resent += 1;
                        io("send", socket.send(&ping))?;
                    }
                    Err(e) => return Err(format!("recv: {e}")),
                }
            }
        }
        Ok(start.elapsed())
    };
    round(common::warmup(size))?;
    let elapsed = round(size)?;
    let _ = socket.send(&[BYE, 0]);
    let Outcome::Figures(mut figures) = common::rate(size, elapsed) else {
        unreachable!("rate gives figures")
    };
    figures.push(("resent", resent as f64));
    Ok(Outcome::Figures(figures))
}

/// One-way tell over UDP: the helper produces, this process consumes and acknowledges with
/// cumulative counts; the round ends at the last datagram or at the producer's end notice.
fn udp_tell(size: u64, workload: NetWorkload) -> Res<Outcome> {
    debug_assert_eq!(workload.transport(), Transport::Udp);
    let bytes = workload.tell_size();
    let (window, batch) = workload.window();
    let (_helper, socket) = udp_pair("udp-produce")?;
    io("timeout", socket.set_read_timeout(Some(PATIENCE)))?;
    let mut round_id = 0u8;
    let mut round = |n: u64| -> Res<(u64, Duration)> {
        round_id = round_id.wrapping_add(1);
        let r = round_id;
        let mut start_dg = vec![START, r];
        start_dg.extend_from_slice(&start_frame(n, bytes, window, batch));
        let mut buf = vec![0u8; 64 * 1024];
        let mut ack = [0u8; 10];
        ack[0] = ACK;
        ack[1] = r;
        let (mut got, mut checksum) = (0u64, 0u64);
        let start = Instant::now();
        io("send", socket.send(&start_dg))?;
        let elapsed = loop {
            let len = io("recv", socket.recv(&mut buf))?;
            if len < 2 {
                continue;
            }
            if buf[1] != r {
                // An earlier round's end notice whose answer was lost.
                if buf[0] == FIN {
                    io("send", socket.send(&[FIN_ACK, buf[1]]))?;
                }
                continue;
            }
            match buf[0] {
                DATA => {
                    got += 1;
                    checksum += u64::from(buf[len - 1]);
                    if got == n {
                        break start.elapsed();
                    }
                    if got.is_multiple_of(batch) {
                        ack[2..].copy_from_slice(&got.to_le_bytes());
                        io("send", socket.send(&ack))?;
                    }
                }
                FIN => break start.elapsed(),
                _ => {}
            }
        };
        // Answer the producer's end notice (it repeats it until answered).
        io("send", socket.send(&[FIN_ACK, r]))?;
        if checksum != got {
            return Err(format!("checksum {checksum} of {got} datagrams"));
        }
        Ok((got, elapsed))
    };
    round(common::warmup(size))?;
    let (got, elapsed) = round(size)?;
    let _ = socket.send(&[BYE, 0]);
    let Outcome::Figures(mut figures) = tell_outcome(got, bytes, elapsed) else {
        unreachable!("tell_outcome gives figures")
    };
    figures.push(("lost", (size - got) as f64));
    Ok(Outcome::Figures(figures))
}
