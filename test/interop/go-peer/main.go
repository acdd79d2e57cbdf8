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
	"time"

	"github.com/ipfs/boxo/ipns"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
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

	case "quit":
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
