// go-peer: a go-libp2p host running go-libp2p-kad-dht, driven over a line
// protocol on stdin/stdout, for priority-dht's interop tests.
//
// One command per line on stdin, one JSON object per line on stdout:
//
//	id                              {"id": "<peer id>", "addrs": ["<multiaddr>", ...]}
//	connect <multiaddr with /p2p/>  {"ok": true}
//	provide <cid>                   {"ok": true}
//	findprovs <cid> <n>             {"providers": [{"id": ..., "addrs": [...]}, ...]}
//	put <key-b64url> <value-b64url> {"ok": true}
//	get <key-b64url>                {"value": "<b64url>"}
//	findpeer <peer id>              {"id": ..., "addrs": [...]}
//	closest <key-b64url>            {"peers": ["<peer id>", ...]}
//	rt                              {"peers": ["<peer id>", ...]} (routing table)
//	conns                           {"peers": ["<peer id>", ...]} (connected peers)
//	provide-sweep <file> <budget-ms>
//	                                announces every CID in <file> (one a line)
//	                                through go-libp2p-kad-dht's SweepingProvider
//	                                (provider package, Kubo's defaults), answers
//	                                once its provide queue has drained (see
//	                                sweepProvide): {"keys", "provided",
//	                                "failed", "pending", "lookups", "ms",
//	                                "readyMs", "prefixLen", "regions",
//	                                "drained"}
//	provide-burst <file> <in-flight> <budget-ms>
//	                                dht.Provide per CID, <in-flight> at once,
//	                                no new one started after the budget:
//	                                {"keys", "provided", "failed", "ms"}
//	quit                            {"ok": true}, then exit
//
// Failures answer {"error": "..."}; every command runs under -timeout.
// Logs go to stderr. Keys are raw DHT keys (e.g. "/ipns/" + multihash
// bytes), base64url with or without padding.
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/boxo/ipns"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/amino"
	"github.com/libp2p/go-libp2p-kad-dht/provider"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"
)

type answer map[string]any

type peerJSON struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
}

func addrInfoJSON(ai peer.AddrInfo) peerJSON {
	addrs := make([]string, 0, len(ai.Addrs))
	for _, a := range ai.Addrs {
		addrs = append(addrs, a.String())
	}
	return peerJSON{ID: ai.ID.String(), Addrs: addrs}
}

func decodeB64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

func main() {
	listen := flag.String("listen", "/ip4/127.0.0.1/tcp/0", "listen multiaddr")
	timeout := flag.Duration("timeout", 30*time.Second, "timeout of each command")
	clientMode := flag.Bool("client", false, "run the DHT in client mode (default: server mode)")
	noRefresh := flag.Bool("no-refresh", false, "no routing table refresh (no self-lookup on joining): the peer only knows whom it is told")
	optimistic := flag.Bool("optimistic", false, "optimistic provide (dht.EnableOptimisticProvide): provide returns once the network size estimate says enough close peers hold the record")
	flag.Parse()

	h, err := libp2p.New(
		libp2p.ListenAddrStrings(*listen),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.Ping(true),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "libp2p.New:", err)
		os.Exit(1)
	}

	mode := dht.ModeServer
	if *clientMode {
		mode = dht.ModeClient
	}
	opts := []dht.Option{
		dht.Mode(mode),
		dht.ProtocolPrefix("/ipfs"), // speaks /ipfs/kad/1.0.0
		// kubo's validator: /pk and /ipns (boxo's ipns package decides what is valid)
		dht.Validator(record.NamespacedValidator{
			"pk":   record.PublicKeyValidator{},
			"ipns": ipns.Validator{KeyBook: h.Peerstore()},
		}),
		// every test peer is on 127.0.0.1: accept loopback peers and addresses
		// (kubo's LAN/WAN split would drop them from one side or the other)
		dht.QueryFilter(func(_ any, ai peer.AddrInfo) bool { return true }),
		dht.RoutingTableFilter(func(_ any, p peer.ID) bool { return true }),
		dht.AddressFilter(func(addrs []ma.Multiaddr) []ma.Multiaddr { return addrs }),
	}
	if *noRefresh {
		opts = append(opts, dht.DisableAutoRefresh())
	}
	if *optimistic {
		opts = append(opts, dht.EnableOptimisticProvide())
	}
	d, err := dht.New(h, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dht.New:", err)
		os.Exit(1)
	}

	out := json.NewEncoder(os.Stdout)
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 16<<20)
	for in.Scan() {
		line := strings.TrimSpace(in.Text())
		if line == "" {
			continue
		}
		args := strings.Fields(line)
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		res, err := run(ctx, h, d, args)
		cancel()
		if err != nil {
			res = answer{"error": err.Error()}
		}
		if err := out.Encode(res); err != nil {
			fmt.Fprintln(os.Stderr, "stdout:", err)
			break
		}
		if args[0] == "quit" {
			break
		}
	}
	_ = d.Close()
	_ = h.Close()
}

func need(args []string, n int) error {
	if len(args) != n+1 {
		return fmt.Errorf("%s takes %d argument(s), got %d", args[0], n, len(args)-1)
	}
	return nil
}

func run(ctx context.Context, h host.Host, d *dht.IpfsDHT, args []string) (answer, error) {
	switch args[0] {
	case "id":
		addrs := make([]string, 0)
		for _, a := range h.Addrs() {
			addrs = append(addrs, a.String())
		}
		return answer{"id": h.ID().String(), "addrs": addrs}, nil

	case "connect":
		if err := need(args, 1); err != nil {
			return nil, err
		}
		addr, err := ma.NewMultiaddr(args[1])
		if err != nil {
			return nil, err
		}
		ai, err := peer.AddrInfoFromP2pAddr(addr)
		if err != nil {
			return nil, err
		}
		if err := h.Connect(ctx, *ai); err != nil {
			return nil, err
		}
		return answer{"ok": true}, nil

	case "provide":
		if err := need(args, 1); err != nil {
			return nil, err
		}
		c, err := cid.Decode(args[1])
		if err != nil {
			return nil, err
		}
		if err := d.Provide(ctx, c, true); err != nil {
			return nil, err
		}
		return answer{"ok": true}, nil

	case "findprovs":
		if err := need(args, 2); err != nil {
			return nil, err
		}
		c, err := cid.Decode(args[1])
		if err != nil {
			return nil, err
		}
		n, err := strconv.Atoi(args[2])
		if err != nil {
			return nil, err
		}
		providers := make([]peerJSON, 0)
		for ai := range d.FindProvidersAsync(ctx, c, n) {
			providers = append(providers, addrInfoJSON(ai))
		}
		return answer{"providers": providers}, nil

	case "put":
		if err := need(args, 2); err != nil {
			return nil, err
		}
		key, err := decodeB64(args[1])
		if err != nil {
			return nil, err
		}
		value, err := decodeB64(args[2])
		if err != nil {
			return nil, err
		}
		if err := d.PutValue(ctx, string(key), value); err != nil {
			return nil, err
		}
		return answer{"ok": true}, nil

	case "get":
		if err := need(args, 1); err != nil {
			return nil, err
		}
		key, err := decodeB64(args[1])
		if err != nil {
			return nil, err
		}
		value, err := d.GetValue(ctx, string(key))
		if err != nil {
			return nil, err
		}
		return answer{"value": base64.RawURLEncoding.EncodeToString(value)}, nil

	case "findpeer":
		if err := need(args, 1); err != nil {
			return nil, err
		}
		id, err := peer.Decode(args[1])
		if err != nil {
			return nil, err
		}
		ai, err := d.FindPeer(ctx, id)
		if err != nil {
			return nil, err
		}
		pj := addrInfoJSON(ai)
		return answer{"id": pj.ID, "addrs": pj.Addrs}, nil

	case "closest":
		if err := need(args, 1); err != nil {
			return nil, err
		}
		key, err := decodeB64(args[1])
		if err != nil {
			return nil, err
		}
		ids, err := d.GetClosestPeers(ctx, string(key))
		if err != nil {
			return nil, err
		}
		return answer{"peers": idStrings(ids)}, nil

	case "rt":
		return answer{"peers": idStrings(d.RoutingTable().ListPeers())}, nil

	case "conns":
		return answer{"peers": idStrings(h.Network().Peers())}, nil

	case "provide-sweep":
		if err := need(args, 2); err != nil {
			return nil, err
		}
		keys, budget, err := keysAndBudget(args[1], args[2])
		if err != nil {
			return nil, err
		}
		return sweepProvide(h, d, keys, budget)

	case "provide-burst":
		if err := need(args, 3); err != nil {
			return nil, err
		}
		keys, budget, err := keysAndBudget(args[1], args[3])
		if err != nil {
			return nil, err
		}
		inFlight, err := strconv.Atoi(args[2])
		if err != nil || inFlight < 1 || inFlight > 1000 {
			return nil, fmt.Errorf("provide-burst: in-flight must be 1..1000, got %q", args[2])
		}
		return burstProvide(d, keys, inFlight, budget), nil

	case "quit":
		if sweeper != nil {
			_ = sweeper.Close()
		}
		return answer{"ok": true}, nil
	}
	return nil, fmt.Errorf("unknown command %q", args[0])
}

func idStrings(ids []peer.ID) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		out = append(out, id.String())
	}
	return out
}

// keysAndBudget reads a file of CIDs (one a line, at most 1,000,000) and a
// budget in milliseconds
func keysAndBudget(file, budgetMs string) ([]mh.Multihash, time.Duration, error) {
	ms, err := strconv.Atoi(budgetMs)
	if err != nil || ms < 1 {
		return nil, 0, fmt.Errorf("budget must be a positive number of ms, got %q", budgetMs)
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	keys := make([]mh.Multihash, 0)
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		line := strings.TrimSpace(lines.Text())
		if line == "" {
			continue
		}
		if len(keys) == 1_000_000 {
			return nil, 0, fmt.Errorf("%s: more than 1000000 CIDs", file)
		}
		c, err := cid.Decode(line)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", file, err)
		}
		keys = append(keys, c.Hash())
	}
	if err := lines.Err(); err != nil {
		return nil, 0, err
	}
	return keys, time.Duration(ms) * time.Millisecond, nil
}

// sweeper is this peer's SweepingProvider, made by the first provide-sweep;
// sweepLookups counts the GetClosestPeers calls it makes
var (
	sweeper      *provider.SweepingProvider
	sweepLookups atomic.Int64
)

// countingRouter is the DHT as the provider's router, counting its lookups
type countingRouter struct{ d *dht.IpfsDHT }

func (r countingRouter) GetClosestPeers(ctx context.Context, key string) ([]peer.ID, error) {
	sweepLookups.Add(1)
	return r.d.GetClosestPeers(ctx, key)
}

// newSweeper builds a SweepingProvider on this peer's DHT the way Kubo does
// by default (Kubo's config defaults: Provide.DHT.MaxWorkers 16,
// DedicatedPeriodicWorkers 2, DedicatedBurstWorkers 1,
// MaxProvideConnsPerWorker 20; replication factor = the DHT's bucket size, 20;
// reprovide interval 22 h), with an in-memory keystore and datastore.
func newSweeper(h host.Host, d *dht.IpfsDHT) (*provider.SweepingProvider, error) {
	return provider.New(
		provider.WithHost(h),
		provider.WithPeerID(h.ID()),
		provider.WithRouter(countingRouter{d}),
		provider.WithMessageSender(d.MessageSender()),
		provider.WithSelfAddrs(d.FilteredAddrs),
		provider.WithAddLocalRecord(func(ctx context.Context, k mh.Multihash) error {
			return d.Provide(ctx, cid.NewCidV1(cid.Raw, k), false)
		}),
		provider.WithReplicationFactor(d.BucketSize()),
		provider.WithReprovideInterval(amino.DefaultReprovideInterval),
		provider.WithMaxWorkers(16),
		provider.WithDedicatedPeriodicWorkers(2),
		provider.WithDedicatedBurstWorkers(1),
		provider.WithMaxProvideConnsPerWorker(20),
	)
}

// sweepProvide hands every key to the SweepingProvider (StartProviding, as
// Kubo does for new blocks) and waits until they are all provided.
//
// StartProviding only enqueues: the keys are grouped by keyspace region and a
// pool of workers explores each region and sends the batched ADD_PROVIDERs.
// A key whose region failed is put back in the queue. So the provide is over
// when the provide queue is empty, no burst worker holds a job (a worker is
// acquired before it dequeues and released after batchProvide returns, so
// there is no window in between) and no provide is ongoing; polled every
// 50 ms. Before that, the provider must be online with a prefix length
// estimate, or StartProviding drops the keys silently (handleProvide returns
// when isOffline): that wait is reported as readyMs, outside ms (Kubo starts
// its provider when the node starts, long before content arrives).
func sweepProvide(h host.Host, d *dht.IpfsDHT, keys []mh.Multihash, budget time.Duration) (answer, error) {
	deadline := time.Now().Add(budget)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	readyStart := time.Now()
	if sweeper == nil {
		s, err := newSweeper(h, d)
		if err != nil {
			return nil, err
		}
		sweeper = s
	}
	for {
		st, err := sweeper.Stats(ctx)
		if err != nil {
			return nil, fmt.Errorf("provider not online within the budget: %w", err)
		}
		if st.Connectivity.Status == "online" && st.Schedule.AvgPrefixLength >= 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	readyMs := time.Since(readyStart).Milliseconds()
	before, err := sweeper.Stats(ctx)
	if err != nil {
		return nil, err
	}
	lookupsBefore := sweepLookups.Load()
	start := time.Now()
	if err := sweeper.StartProviding(true, keys...); err != nil {
		return nil, err
	}
	drained := false
	var st = before
	for time.Now().Before(deadline) {
		st, err = sweeper.Stats(ctx)
		if err != nil {
			break
		}
		if st.Queues.PendingKeyProvides == 0 && st.Workers.ActiveBurst == 0 && st.Operations.Ongoing.KeyProvides == 0 {
			drained = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(start)
	return answer{
		"keys":      len(keys),
		"provided":  st.Operations.Past.KeysProvided - before.Operations.Past.KeysProvided,
		"failed":    st.Operations.Past.KeysFailed - before.Operations.Past.KeysFailed,
		"pending":   st.Queues.PendingKeyProvides,
		"lookups":   sweepLookups.Load() - lookupsBefore,
		"ms":        elapsed.Milliseconds(),
		"readyMs":   readyMs,
		"prefixLen": st.Schedule.AvgPrefixLength,
		"regions":   st.Schedule.Regions,
		"drained":   drained,
	}, nil
}

// burstProvide is the classic provide of every key on its own (dht.Provide:
// one lookup and k ADD_PROVIDERs per key), inFlight at once, as the
// pre-sweep reprovider did; no new provide starts after the budget, and the
// ones running are cut off at it.
func burstProvide(d *dht.IpfsDHT, keys []mh.Multihash, inFlight int, budget time.Duration) answer {
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	var next, provided, failed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range inFlight {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(keys)) && ctx.Err() == nil; i = next.Add(1) - 1 {
				if err := d.Provide(ctx, cid.NewCidV1(cid.Raw, keys[i]), true); err != nil {
					failed.Add(1)
				} else {
					provided.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return answer{"keys": len(keys), "provided": provided.Load(), "failed": failed.Load(), "ms": time.Since(start).Milliseconds()}
}
