package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/hookrelay/hookrelay/relay"
)

// adminFlags are the flags of the commands that talk to the admin API,
// resolved the way 'caddy stop' and 'caddy reload' resolve them.
type adminFlags struct {
	address string
	config  string
	adapter string
}

func (f *adminFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.address, "address", "", "address of the admin API (default: from --config, else localhost:2019)")
	c.Flags().StringVarP(&f.config, "config", "c", "", "config file to read the admin address from, when --address is not set")
	c.Flags().StringVarP(&f.adapter, "adapter", "a", "", "config adapter for --config")
}

// call sends a request to the admin API and decodes the JSON answer into
// out (when not nil). An error answer (the admin API's {"error": "..."})
// becomes an error naming the request, the status and the message.
func (f *adminFlags) call(method, uri string, body, out any) error {
	addr, err := caddycmd.DetermineAdminAPIAddress(f.address, nil, f.config, f.adapter)
	if err != nil {
		return fmt.Errorf("finding the admin API: %v", err)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	resp, err := adminRequest(addr, method, uri, rd)
	if err != nil {
		return fmt.Errorf("%s %s at %s: %v", method, uri, addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		msg, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIBody))
		if err != nil {
			return fmt.Errorf("%s %s at %s: HTTP %d: reading the error: %v", method, uri, addr, resp.StatusCode, err)
		}
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(msg, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: HTTP %d: %s", method, uri, resp.StatusCode, e.Error)
		}
		return fmt.Errorf("%s %s at %s: HTTP %d: %s", method, uri, addr, resp.StatusCode, bytes.TrimSpace(msg))
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("reading the answer of %s: %v", uri, err)
	}
	return nil
}

// adminRequest sends a request to the admin API listening at addr (a
// network address as Caddy's admin listen takes it: host:port, unix/<path>
// or fd/<n>), the way Caddy's own commands do: an Origin header the admin
// API accepts over TCP, and a loopback Host over a socket.
func adminRequest(addr, method, uri string, body io.Reader) (*http.Response, error) {
	na, err := caddy.ParseNetworkAddress(addr)
	if err != nil || na.PortRangeSize() > 1 {
		return nil, fmt.Errorf("invalid admin address %s: %v", addr, err)
	}
	origin := "http://" + na.JoinHostPort(0)
	socket := na.IsUnixNetwork() || na.IsFdNetwork()
	if socket {
		// Any Host does for a socket; the admin API wants a loopback one.
		origin = "http://127.0.0.1"
		// A unix address may end in |<permission bits> for the listener.
		na.Host, _, _ = strings.Cut(na.Host, "|")
	}
	req, err := http.NewRequest(method, origin+uri, body)
	if err != nil {
		return nil, err
	}
	if !socket {
		req.Header.Set("Origin", origin)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	dial := na.JoinHostPort(0)
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, na.Network, dial)
		},
	}}
	return client.Do(req)
}

func statusCommand() *cobra.Command {
	var (
		af     adminFlags
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "status",
		Short: "Show each destination's backlog, retries, last status and recent outcomes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var resp destinationsResponse
			if err := af.call(http.MethodGet, "/hookrelay/destinations", nil, &resp); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(resp)
			}
			if len(resp.Destinations) == 0 {
				fmt.Fprintln(out, "no destinations are running")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "DESTINATION\tSTATE\tPENDING\tIN FLIGHT\tIN RETRY\tNEXT ATTEMPT\tLAST\tLAST 5M OK/RETRY/DEAD\tDEAD LETTERS")
			now := time.Now()
			for _, d := range resp.Destinations {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%d/%d/%d\t%d\n",
					d.Name, destinationState(d), d.Pending, d.InFlight, d.InRetry,
					relTime(d.NextAttempt, now), lastAttempt(d),
					d.Recent.Delivered, d.Recent.Retry, d.Recent.DeadLetter, d.DeadLetters)
			}
			return tw.Flush()
		},
	}
	af.add(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print the admin API's JSON")
	return c
}

// destinationState is a destination's health in a word.
func destinationState(d relay.DestinationStatus) string {
	switch {
	case d.Gone:
		return "gone"
	case d.Paused:
		return "paused"
	case d.CircuitOpen:
		return "failing"
	case d.LastOutcome == relay.OutcomeRetry || d.LastOutcome == relay.OutcomeDeadLetter:
		return "degraded"
	default:
		return "ok"
	}
}

func lastAttempt(d relay.DestinationStatus) string {
	switch {
	case d.LastOutcome == 0:
		return "-"
	case d.LastStatus == 0:
		return "no answer"
	default:
		return strconv.Itoa(d.LastStatus)
	}
}

// relTime shows a time relative to now, to the second.
func relTime(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	d := t.Sub(now).Round(time.Second)
	if d <= 0 {
		return "due"
	}
	return "in " + d.String()
}

func deadLettersCommand() *cobra.Command {
	var (
		af     adminFlags
		dest   string
		limit  int
		cursor string
	)
	c := &cobra.Command{
		Use:   "dead-letters",
		Short: "List dead letters (never their payload)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if dest != "" {
				q.Set("destination", dest)
			}
			q.Set("limit", strconv.Itoa(limit))
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			var resp deadLettersResponse
			if err := af.call(http.MethodGet, "/hookrelay/dead_letters?"+q.Encode(), nil, &resp); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tDESTINATION\tEVENT\tTOPIC\tATTEMPTS\tFIRST SEEN\tDEAD AT\tSTATUS\tERROR")
			for _, dl := range resp.DeadLetters {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\n",
					dl.Seq, dl.Destination, dl.EventID, dl.Topic, dl.Attempts,
					dl.FirstSeen.Format(time.RFC3339), dl.DeadAt.Format(time.RFC3339), dl.LastStatus, oneLine(dl.LastError))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(out, "%d of %d dead letters", len(resp.DeadLetters), resp.Total)
			if resp.NextCursor != "" {
				fmt.Fprintf(out, "; more with --cursor %s", resp.NextCursor)
			}
			fmt.Fprintln(out)
			return nil
		},
	}
	af.add(c)
	c.Flags().StringVar(&dest, "destination", "", "only this destination's dead letters")
	c.Flags().IntVar(&limit, "limit", 100, "how many to list (1 to 1000)")
	c.Flags().StringVar(&cursor, "cursor", "", "continue after a previous page")
	return c
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func replayCommand() *cobra.Command {
	var (
		af    adminFlags
		dest  string
		since string
	)
	c := &cobra.Command{
		Use:   "replay [<id>...] | --destination <name> [--since <time|duration>]",
		Short: "Requeue dead letters with a fresh retry budget",
		Long: `Requeue dead letters, by id (as 'caddy hookrelay dead-letters' lists them)
or all of a destination's, optionally only those dead-lettered since a time
(RFC 3339, such as 2026-11-22T09:00:00Z) or a duration ago (such as 2h).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var req replayRequest
			for _, a := range args {
				id, err := strconv.ParseUint(a, 10, 64)
				if err != nil {
					return fmt.Errorf("invalid dead letter id %q: ids are numbers, as 'caddy hookrelay dead-letters' lists them", a)
				}
				req.IDs = append(req.IDs, id)
			}
			req.Destination = dest
			if since != "" {
				if d, err := time.ParseDuration(since); err == nil {
					req.Since = time.Now().Add(-d).UTC().Format(time.RFC3339)
				} else if _, err := time.Parse(time.RFC3339, since); err == nil {
					req.Since = since
				} else {
					return fmt.Errorf("invalid --since %q: use an RFC 3339 time or a duration such as 2h", since)
				}
			}
			if len(req.IDs) == 0 && req.Destination == "" {
				return errors.New("nothing to replay: give dead letter ids, or --destination to replay all of its dead letters")
			}
			var resp replayResponse
			if err := af.call(http.MethodPost, "/hookrelay/dead_letters/replay", req, &resp); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "replayed %d dead letter(s)\n", resp.Replayed)
			return nil
		},
	}
	af.add(c)
	c.Flags().StringVar(&dest, "destination", "", "replay all of this destination's dead letters")
	c.Flags().StringVar(&since, "since", "", "with --destination: only those dead-lettered since this time or duration ago")
	return c
}

// pauseCommand builds 'pause' or 'resume'.
func pauseCommand(action string) *cobra.Command {
	var af adminFlags
	short := "Stop deliveries to a destination (on every node) until resumed; events are still stored"
	if action == "resume" {
		short = "Resume deliveries to a paused destination"
	}
	c := &cobra.Command{
		Use:   action + " <destination>",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !relay.ValidName(name) {
				return fmt.Errorf("invalid destination name %q", name)
			}
			var resp pauseResponse
			if err := af.call(http.MethodPost, "/hookrelay/destinations/"+name+"/"+action, nil, &resp); err != nil {
				return err
			}
			state := "resumed"
			if resp.Paused {
				state = "paused"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", resp.Destination, state)
			return nil
		},
	}
	af.add(c)
	return c
}
