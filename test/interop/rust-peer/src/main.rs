//! rust-peer: a rust-libp2p host running libp2p-kad (the `libp2p` crate,
//! 0.57.1), driven over the same stdin/stdout line protocol as
//! test/interop/go-peer, for priority-dht's interop tests.
//!
//! One command per line on stdin, one JSON object per line on stdout, in order:
//!
//!   id                              {"id": "<peer id>", "addrs": ["<multiaddr>", ...]}
//!   connect <multiaddr with /p2p/>  {"ok": true} (dials; kad adds the peer once identify shows it serves kad)
//!   addpeer <multiaddr with /p2p/>  {"ok": true} (Behaviour::add_address, no dial)
//!   bootstrap                       {"ok": true} (Behaviour::bootstrap, answered when all its steps are done)
//!   provide <cid>                   {"ok": true} (start_providing)
//!   findprovs <cid> <n>             {"providers": [{"id": ..., "addrs": [...]}, ...]} (get_providers)
//!   put <key-b64url> <value-b64url> {"ok": true} (put_record, quorum one)
//!   get <key-b64url>                {"value": "<b64url>"} (get_record: the first record found)
//!   findpeer <peer id>              {"id": ..., "addrs": [...]}
//!   closest <key-b64url>            {"peers": ["<peer id>", ...]} (get_n_closest_peers, k of -k)
//!   rt                              {"peers": ["<peer id>", ...]} (routing table)
//!   conns                           {"peers": ["<peer id>", ...]} (connected peers)
//!   mode                            {"mode": "server" | "client"}
//!   quit                            {"ok": true}, then exit
//!
//! Failures answer {"error": "..."}; every command runs under --timeout-ms.
//! Keys are raw DHT keys (e.g. "/ipns/" + multihash bytes), base64url with or
//! without padding. A provider key is the CID's multihash, as in Go and JS.
//!
//! Differences from go-libp2p-kad-dht that the tests rely on or name:
//! - Records are NOT validated. libp2p-kad's default `StoreInserts::Unfiltered`
//!   stores every inbound PUT_VALUE as it comes (any key namespace, any
//!   bytes, a forged or expired IPNS record alike), and `get_record` returns
//!   the first record it meets, local store first, without a selector. This
//!   peer keeps that default on purpose: it is how a rust-libp2p node behaves
//!   unless its application filters, and it is nothing like Go's /pk and
//!   /ipns validators.
//! - libp2p-kad is a client until it has a confirmed external address; on
//!   127.0.0.1 there is none, so server mode is set explicitly (`--client`
//!   sets client mode explicitly).
//! - `get_providers` yields peer ids only; the addresses printed for a
//!   provider are what this peer knows of it (its own listen addresses,
//!   identify, routing table updates).
//! - There is no FIND_PEER query in libp2p-kad: `findpeer` runs a closest-peers
//!   query for the peer id and answers with the peer if the query met it.
//! - Without an external address, this peer's ADD_PROVIDER names itself with
//!   no addresses (libp2p-kad announces external addresses only).
//! - `provide` answers once libp2p-kad has handed the ADD_PROVIDER messages
//!   to the connections (it counts a peer done then), before they are written.
//! - libp2p-kad answers a kad PING message by closing the stream ("Kademlia
//!   PING messages are unsupported"), and FIND_NODE for its own id without
//!   itself; the addresses it names for a peer carry /p2p/<id>.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroUsize;
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use libp2p::kad::{self, store::MemoryStore, GetClosestPeersOk, GetProvidersOk, GetRecordOk, Mode, QueryId, QueryResult, Quorum, Record, RecordKey};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use serde_json::{json, Value};
use tokio::sync::mpsc;

const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfs/kad/1.0.0");

#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<MemoryStore>,
}

struct Options {
    listen: Multiaddr,
    timeout: Duration,
    client: bool,
    no_refresh: bool,
    k: NonZeroUsize,
}

fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        listen: "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
        timeout: Duration::from_secs(30),
        client: false,
        no_refresh: false,
        k: NonZeroUsize::new(20).unwrap(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} takes a value"));
        match arg.as_str() {
            "--listen" => o.listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--timeout-ms" => o.timeout = Duration::from_millis(value()?.parse().map_err(|e| format!("--timeout-ms: {e}"))?),
            "--k" => o.k = value()?.parse().map_err(|e| format!("--k: {e}"))?,
            "--client" => o.client = true,
            "--no-refresh" => o.no_refresh = true,
            _ => return Err(format!("unknown argument {arg}")),
        }
    }
    Ok(o)
}

/// What a running command waits for
enum Pending {
    Dial { connection: ConnectionId },
    Query { id: QueryId, kind: QueryKind },
}

enum QueryKind {
    Bootstrap,
    Provide,
    FindProviders { want: usize, found: Vec<PeerId> },
    Put,
    Get,
    FindPeer { target: PeerId },
    Closest,
}

struct Peer {
    swarm: Swarm<Behaviour>,
    k: NonZeroUsize,
    /// Addresses learned from identify and routing updates, for provider answers
    known_addrs: HashMap<PeerId, Vec<Multiaddr>>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_b64(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|e| format!("base64url: {e}"))
}

fn read_varint(bytes: &[u8]) -> Result<(u64, &[u8]), String> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate().take(9) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, &bytes[i + 1..]));
        }
    }
    Err("bad varint in CID".into())
}

fn decode_base32_lower(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return Err(format!("bad base32 character {:?} in CID", c as char)),
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// The multihash of a CIDv0 (base58btc "Qm...") or a base32 CIDv1 ("b..."): the provider key
fn cid_multihash(s: &str) -> Result<Vec<u8>, String> {
    if s.starts_with("Qm") {
        return bs58::decode(s).into_vec().map_err(|e| format!("CIDv0: {e}"));
    }
    let bytes = decode_base32_lower(s.strip_prefix('b').ok_or("only base32 CIDv1 and CIDv0 are supported")?)?;
    let (version, rest) = read_varint(&bytes)?;
    if version != 1 {
        return Err(format!("CID version {version}"));
    }
    let (_codec, multihash) = read_varint(rest)?;
    Ok(multihash.to_vec())
}

fn p2p_addr(s: &str) -> Result<(PeerId, Multiaddr), String> {
    let addr: Multiaddr = s.parse().map_err(|e| format!("multiaddr: {e}"))?;
    match addr.iter().last() {
        Some(Protocol::P2p(id)) => {
            let mut transport = addr.clone();
            transport.pop();
            Ok((id, transport))
        }
        _ => Err(format!("{s} has no /p2p/ suffix")),
    }
}

fn need(args: &[&str], n: usize) -> Result<(), String> {
    if args.len() != n + 1 {
        return Err(format!("{} takes {} argument(s), got {}", args[0], n, args.len() - 1));
    }
    Ok(())
}

fn ids(ids: impl Iterator<Item = PeerId>) -> Value {
    Value::from(ids.map(|p| p.to_string()).collect::<Vec<_>>())
}

impl Peer {
    fn listen_addrs(&self) -> Vec<String> {
        self.swarm.listeners().map(|a| a.to_string()).collect()
    }

    fn addrs_of(&self, peer: &PeerId) -> Vec<String> {
        if peer == self.swarm.local_peer_id() {
            return self.listen_addrs();
        }
        self.known_addrs.get(peer).map(|v| v.iter().map(|a| a.to_string()).collect()).unwrap_or_default()
    }

    fn learn(&mut self, peer: PeerId, addrs: impl IntoIterator<Item = Multiaddr>) {
        let known = self.known_addrs.entry(peer).or_default();
        for a in addrs {
            // keep the transport part: /p2p/ is the peer id we answer with anyway
            let mut a = a;
            if let Some(Protocol::P2p(_)) = a.iter().last() {
                a.pop();
            }
            if !known.contains(&a) {
                known.push(a);
            }
        }
    }

    /// Starts one command: an immediate answer, or what to wait for
    fn start(&mut self, args: &[&str]) -> Result<Result<Value, Pending>, String> {
        let kad = &mut self.swarm.behaviour_mut().kad;
        match args[0] {
            "id" => Ok(Ok(json!({ "id": self.swarm.local_peer_id().to_string(), "addrs": self.listen_addrs() }))),
            "connect" => {
                need(args, 1)?;
                let (peer, addr) = p2p_addr(args[1])?;
                if self.swarm.is_connected(&peer) {
                    return Ok(Ok(json!({ "ok": true })));
                }
                let opts = DialOpts::peer_id(peer).addresses(vec![addr]).condition(PeerCondition::Always).build();
                let connection = opts.connection_id();
                self.swarm.dial(opts).map_err(|e| e.to_string())?;
                Ok(Err(Pending::Dial { connection }))
            }
            "addpeer" => {
                need(args, 1)?;
                let (peer, addr) = p2p_addr(args[1])?;
                match kad.add_address(&peer, addr) {
                    kad::RoutingUpdate::Failed => Err("add_address failed (bucket full?)".into()),
                    _ => Ok(Ok(json!({ "ok": true }))),
                }
            }
            "bootstrap" => {
                let id = kad.bootstrap().map_err(|e| format!("bootstrap: {e:?}"))?;
                Ok(Err(Pending::Query { id, kind: QueryKind::Bootstrap }))
            }
            "provide" => {
                need(args, 1)?;
                let key = RecordKey::new(&cid_multihash(args[1])?);
                let id = kad.start_providing(key).map_err(|e| e.to_string())?;
                Ok(Err(Pending::Query { id, kind: QueryKind::Provide }))
            }
            "findprovs" => {
                need(args, 2)?;
                let key = RecordKey::new(&cid_multihash(args[1])?);
                let want = args[2].parse().map_err(|e| format!("count: {e}"))?;
                let id = kad.get_providers(key);
                Ok(Err(Pending::Query { id, kind: QueryKind::FindProviders { want, found: Vec::new() } }))
            }
            "put" => {
                need(args, 2)?;
                let record = Record::new(decode_b64(args[1])?, decode_b64(args[2])?);
                let id = kad.put_record(record, Quorum::One).map_err(|e| e.to_string())?;
                Ok(Err(Pending::Query { id, kind: QueryKind::Put }))
            }
            "get" => {
                need(args, 1)?;
                let id = kad.get_record(RecordKey::new(&decode_b64(args[1])?));
                Ok(Err(Pending::Query { id, kind: QueryKind::Get }))
            }
            "findpeer" => {
                need(args, 1)?;
                let target: PeerId = args[1].parse().map_err(|e| format!("peer id: {e}"))?;
                let id = kad.get_closest_peers(target);
                Ok(Err(Pending::Query { id, kind: QueryKind::FindPeer { target } }))
            }
            "closest" => {
                need(args, 1)?;
                let id = kad.get_n_closest_peers(decode_b64(args[1])?, self.k);
                Ok(Err(Pending::Query { id, kind: QueryKind::Closest }))
            }
            "rt" => {
                let mut peers = Vec::new();
                for bucket in kad.kbuckets() {
                    for entry in bucket.iter() {
                        peers.push(*entry.node.key.preimage());
                    }
                }
                Ok(Ok(json!({ "peers": ids(peers.into_iter()) })))
            }
            "conns" => Ok(Ok(json!({ "peers": ids(self.swarm.connected_peers().copied()) }))),
            "mode" => Ok(Ok(json!({ "mode": match kad.mode() { Mode::Server => "server", Mode::Client => "client" } }))),
            "quit" => Ok(Ok(json!({ "ok": true }))),
            other => Err(format!("unknown command {other:?}")),
        }
    }

    /// Feeds a query event to the pending command; Some(answer) when it is done
    fn progress(&mut self, kind: &mut QueryKind, id: QueryId, result: QueryResult, last: bool) -> Option<Value> {
        let answer = match (kind, result) {
            (QueryKind::Bootstrap, QueryResult::Bootstrap(r)) => match r {
                Ok(_) if !last => return None,
                Ok(_) => json!({ "ok": true }),
                Err(e) => json!({ "error": format!("bootstrap: {e}") }),
            },
            (QueryKind::Provide, QueryResult::StartProviding(r)) => match r {
                Ok(_) => json!({ "ok": true }),
                Err(e) => json!({ "error": format!("provide: {e}") }),
            },
            (QueryKind::FindProviders { want, found }, QueryResult::GetProviders(r)) => {
                if let Ok(GetProvidersOk::FoundProviders { providers, .. }) = r {
                    for p in providers {
                        if !found.contains(&p) {
                            found.push(p);
                        }
                    }
                }
                if found.len() < *want && !last {
                    return None;
                }
                found.truncate(*want);
                let list: Vec<Value> = found.iter().map(|p| json!({ "id": p.to_string(), "addrs": self.addrs_of(p) })).collect();
                json!({ "providers": list })
            }
            (QueryKind::Put, QueryResult::PutRecord(r)) => match r {
                Ok(_) => json!({ "ok": true }),
                Err(e) => json!({ "error": format!("put: {e}") }),
            },
            (QueryKind::Get, QueryResult::GetRecord(r)) => match r {
                Ok(GetRecordOk::FoundRecord(found)) => json!({ "value": b64(&found.record.value) }),
                Ok(GetRecordOk::FinishedWithNoAdditionalRecord { .. }) => json!({ "error": "routing: not found" }),
                Err(e) => json!({ "error": format!("get: {e}") }),
            },
            (QueryKind::FindPeer { target }, QueryResult::GetClosestPeers(r)) => match r {
                Ok(GetClosestPeersOk { peers, .. }) => match peers.into_iter().find(|p| p.peer_id == *target) {
                    Some(p) => {
                        self.learn(p.peer_id, p.addrs);
                        json!({ "id": p.peer_id.to_string(), "addrs": self.addrs_of(&p.peer_id) })
                    }
                    None if self.swarm.is_connected(target) => json!({ "id": target.to_string(), "addrs": self.addrs_of(target) }),
                    None => json!({ "error": "routing: not found" }),
                },
                Err(e) => json!({ "error": format!("findpeer: {e}") }),
            },
            (QueryKind::Closest, QueryResult::GetClosestPeers(r)) => match r {
                Ok(GetClosestPeersOk { peers, .. }) => json!({ "peers": ids(peers.into_iter().map(|p| p.peer_id)) }),
                Err(e) => json!({ "error": format!("closest: {e}") }),
            },
            _ => return None,
        };
        if !last {
            if let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                q.finish();
            }
        }
        Some(answer)
    }
}

fn print(answer: &Value) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{answer}");
    let _ = out.flush();
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let options = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rust-peer: {e}");
            std::process::exit(2);
        }
    };

    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .expect("tcp")
        .with_behaviour(|key| {
            let mut config = kad::Config::new(KAD_PROTOCOL);
            config
                .set_query_timeout(options.timeout)
                .set_kbucket_size(options.k)
                .set_replication_factor(options.k)
                // the default, spelled out: inbound records and provider
                // records go straight into the store, unvalidated
                .set_record_filtering(kad::StoreInserts::Unfiltered);
            if options.no_refresh {
                // no periodic bootstrap; libp2p-kad 0.57 still bootstraps once
                // shortly after a peer enters a table of fewer than k (its
                // automatic throttle cannot be turned off from outside)
                config.set_periodic_bootstrap_interval(None);
            }
            let local = key.public().to_peer_id();
            Behaviour {
                identify: identify::Behaviour::new(identify::Config::new("/ipfs/id/1.0.0".into(), key.public()).with_agent_version("priority-dht-rust-peer".into())),
                ping: ping::Behaviour::default(),
                kad: kad::Behaviour::with_config(local, MemoryStore::new(local), config),
            }
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600)))
        .build();

    swarm.behaviour_mut().kad.set_mode(Some(if options.client { Mode::Client } else { Mode::Server }));
    if let Err(e) = swarm.listen_on(options.listen.clone()) {
        eprintln!("rust-peer: listen_on {}: {e}", options.listen);
        std::process::exit(1);
    }

    // stdin on its own thread; EOF (the driver gone) reads as quit
    let (tx, mut lines) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        loop {
            line.clear();
            match stdin.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = tx.send("quit".into());
                    return;
                }
                Ok(_) => {
                    if tx.send(line.trim().to_string()).is_err() {
                        return;
                    }
                }
            }
        }
    });

    let mut peer = Peer { swarm, k: options.k, known_addrs: HashMap::new() };
    let mut listening = false;
    let mut queue: VecDeque<String> = VecDeque::new();
    let mut pending: Option<(Pending, tokio::time::Instant)> = None;
    let mut quitting = false;
    let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);

    loop {
        // start queued commands while nothing is running (and, for the first, once listening)
        while pending.is_none() && listening && !quitting {
            let Some(line) = queue.pop_front() else { break };
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.is_empty() {
                continue;
            }
            match peer.start(&words) {
                Ok(Ok(answer)) => print(&answer),
                Ok(Err(p)) => pending = Some((p, tokio::time::Instant::now() + options.timeout)),
                Err(e) => print(&json!({ "error": e })),
            }
            if words[0] == "quit" {
                quitting = true;
            }
        }
        if quitting {
            break;
        }
        let deadline = pending.as_ref().map(|(_, d)| *d).unwrap_or(far);
        tokio::select! {
            line = lines.recv() => {
                queue.push_back(line.unwrap_or_else(|| "quit".into()));
            }
            _ = tokio::time::sleep_until(deadline), if pending.is_some() => {
                if let Some((Pending::Query { id, .. }, _)) = pending.take() {
                    if let Some(mut q) = peer.swarm.behaviour_mut().kad.query_mut(&id) {
                        q.finish();
                    }
                }
                print(&json!({ "error": "context deadline exceeded" }));
            }
            event = peer.swarm.select_next_some() => {
                match event {
                    SwarmEvent::NewListenAddr { .. } => listening = true,
                    SwarmEvent::ConnectionEstablished { connection_id, .. } => {
                        if matches!(pending, Some((Pending::Dial { connection }, _)) if connection == connection_id) {
                            pending = None;
                            print(&json!({ "ok": true }));
                        }
                    }
                    SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                        if matches!(pending, Some((Pending::Dial { connection }, _)) if connection == connection_id) {
                            pending = None;
                            print(&json!({ "error": format!("dial: {error}") }));
                        }
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                        peer.learn(peer_id, info.listen_addrs.iter().cloned());
                        // an inbound connection carries no dialable address: kad
                        // learns a server's listen addresses from identify
                        if info.protocols.contains(&KAD_PROTOCOL) {
                            for addr in info.listen_addrs {
                                peer.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                            }
                        }
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::RoutingUpdated { peer: p, addresses, .. })) => {
                        peer.learn(p, addresses.iter().cloned());
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed { id, result, step, .. })) => {
                        if let Some((Pending::Query { id: want, mut kind }, deadline)) = pending.take() {
                            if want == id {
                                match peer.progress(&mut kind, id, result, step.last) {
                                    Some(answer) => print(&answer),
                                    None => pending = Some((Pending::Query { id: want, kind }, deadline)),
                                }
                            } else {
                                pending = Some((Pending::Query { id: want, kind }, deadline));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    // close connections before exiting, so that peers see a clean close.
    // (This does not deliver an ADD_PROVIDER still queued in a handler:
    // start_providing counts a peer done once the message is handed to its
    // connection, before it is written.)
    let connected: Vec<PeerId> = peer.swarm.connected_peers().copied().collect();
    for p in connected {
        let _ = peer.swarm.disconnect_peer_id(p);
    }
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    while peer.swarm.connected_peers().next().is_some() {
        tokio::select! {
            _ = peer.swarm.select_next_some() => {}
            _ = tokio::time::sleep_until(until) => break,
        }
    }
}
