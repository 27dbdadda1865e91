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

	"github.com/hookrelay/hookrelay/registry"
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
			return &apiAnswerError{resp.StatusCode, fmt.Sprintf("%s %s at %s: HTTP %d: reading the error: %v", method, uri, addr, resp.StatusCode, err)}
		}
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(msg, &e) == nil && e.Error != "" {
			return &apiAnswerError{resp.StatusCode, fmt.Sprintf("%s %s: HTTP %d: %s", method, uri, resp.StatusCode, e.Error)}
		}
		return &apiAnswerError{resp.StatusCode, fmt.Sprintf("%s %s at %s: HTTP %d: %s", method, uri, addr, resp.StatusCode, bytes.TrimSpace(msg))}
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("reading the answer of %s: %v", uri, err)
	}
	return nil
}

// apiAnswerError is an error answer of the admin API: its status, and a
// message naming the request.
type apiAnswerError struct {
	status int
	msg    string
}

func (e *apiAnswerError) Error() string { return e.msg }

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
			} else {
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "DESTINATION\tSTATE\tPENDING\tIN FLIGHT\tIN RETRY\tNEXT ATTEMPT\tLAST\tLAST 5M OK/RETRY/DEAD\tDEAD LETTERS")
				now := time.Now()
				for _, d := range resp.Destinations {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%d/%d/%d\t%d\n",
						d.Name, destinationState(d), d.Pending, d.InFlight, d.InRetry,
						relTime(d.NextAttempt, now), lastAttempt(d),
						d.Recent.Delivered, d.Recent.Retry, d.Recent.DeadLetter, d.DeadLetters)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				// Ordered destinations: their blocked lanes, one line
				// each that has any.
				for _, d := range resp.Destinations {
					if d.Ordered && d.BlockedLanes > 0 {
						fmt.Fprintf(out, "%s: %d of %d lanes blocked; the oldest since %s, key %q (docs/ordering.md)\n",
							d.Name, d.BlockedLanes, d.Lanes, relTime(d.OldestBlockedSince, now), d.OldestBlockedKey)
					}
				}
			}
			// One line about the registered webhooks, when the registry
			// runs (the endpoint answers 404 when it does not).
			var wr webhooksResponse
			err := af.call(http.MethodGet, "/hookrelay/webhooks?limit=1", nil, &wr)
			var ae *apiAnswerError
			switch {
			case errors.As(err, &ae) && ae.status == http.StatusNotFound:
			case err != nil:
				fmt.Fprintf(out, "registered webhooks: cannot be read: %v\n", err)
			default:
				fmt.Fprintf(out, "registered webhooks: %d, %d broken (caddy hookrelay webhooks list)\n", wr.Total, wr.Broken)
			}
			return nil
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

// webhooksCommand groups the commands of registered webhooks.
func webhooksCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "webhooks",
		Short: "List, create and delete registered webhooks, and rotate their signing secrets",
		Long: `Every tenant's registered webhooks, through the admin API; never their
credentials. A webhook runs as the destination wh-<id>: pause, resume,
dead-letters --destination and replay --destination take that name.`,
	}
	c.AddCommand(webhooksListCommand(), webhooksCreateCommand(), webhooksDeleteCommand(), webhooksRotateCommand())
	return c
}

func webhooksListCommand() *cobra.Command {
	var (
		af     adminFlags
		tenant string
		limit  int
		after  string
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "list [--tenant <tenant>]",
		Short: "List registered webhooks in id order, with their state on this node",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if tenant != "" {
				q.Set("tenant", tenant)
			}
			q.Set("limit", strconv.Itoa(limit))
			if after != "" {
				q.Set("after", after)
			}
			var resp webhooksResponse
			if err := af.call(http.MethodGet, "/hookrelay/webhooks?"+q.Encode(), nil, &resp); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(resp)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTENANT\tTOPIC\tADDRESS\tSTATE\tQUEUED\tLAST ATTEMPT")
			now := time.Now()
			for _, w := range resp.Webhooks {
				state := webhookState(w.Info, w.Status)
				if state == "broken" {
					state += ": " + shorten(oneLine(w.Broken), 80)
				}
				queued, last := "-", "-"
				if st := w.Status; st != nil {
					queued = strconv.FormatUint(st.Depth(), 10)
					if last = lastAttempt(*st); st.LastAttempt != nil {
						last += " " + ago(*st.LastAttempt, now)
					}
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", w.ID, w.Tenant, w.Topic, w.Address, state, queued, last)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(out, "%d of %d webhooks, %d broken", len(resp.Webhooks), resp.Total, resp.Broken)
			if resp.NextAfter != nil {
				fmt.Fprintf(out, "; more with --after %d", *resp.NextAfter)
			}
			fmt.Fprintln(out)
			return nil
		},
	}
	af.add(c)
	c.Flags().StringVar(&tenant, "tenant", "", "only this tenant's webhooks")
	c.Flags().IntVar(&limit, "limit", 100, "how many to list (1 to 1000)")
	c.Flags().StringVar(&after, "after", "", "continue after this id (the previous page's last)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the admin API's JSON")
	return c
}

// ago shows a past time relative to now, to the second.
func ago(t, now time.Time) string {
	d := now.Sub(t).Round(time.Second)
	if d <= 0 {
		return "just now"
	}
	return d.String() + " ago"
}

// shorten cuts s to n runes, marking the cut.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func webhooksCreateCommand() *cobra.Command {
	var (
		af                 adminFlags
		req                createWebhookRequest
		headers, apiKeys   []string
		secretFlag, filter string
	)
	c := &cobra.Command{
		Use:   "create --tenant <tenant> --topic <topic> --url <https://...> [flags]",
		Short: "Register a webhook for a tenant; prints its signing secret once",
		Long: `Register a webhook for a tenant, as the tenant could over its API. The
signing secret (Standard Webhooks, whsec_...) is generated unless --secret
gives one, and is printed only this once. --url is the webhook's address
(--address, as for every command here, is the admin API's).

	caddy hookrelay webhooks create --tenant acme --topic orders/created \
	    --url https://erp.example.com/hooks --api-key-header X-Api-Key=...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if req.Tenant == "" || req.Topic == "" || req.Address == "" {
				return errors.New("--tenant, --topic and --url are required")
			}
			req.Secret, req.Filter = secretFlag, filter
			var err error
			if req.Headers, err = parsePairs("--header", headers); err != nil {
				return err
			}
			if len(apiKeys) > 0 {
				keys, err := parsePairs("--api-key-header", apiKeys)
				if err != nil {
					return err
				}
				req.Authorization = &registry.Authorization{AuthType: registry.AuthAPIKey, Headers: keys}
			}
			var resp webhookSecretResponse
			if err := af.call(http.MethodPost, "/hookrelay/webhooks", req, &resp); err != nil {
				return err
			}
			w := resp.Webhook
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "created webhook %d (destination %s) for tenant %s: %s -> %s\n", w.ID, w.Destination, w.Tenant, w.Topic, w.Address)
			if w.Broken != "" {
				fmt.Fprintf(out, "it does not run: %s\n", oneLine(w.Broken))
			}
			fmt.Fprintf(out, "signing secret, shown only this once: %s\n", resp.Secret)
			return nil
		},
	}
	af.add(c)
	c.Flags().StringVar(&req.Tenant, "tenant", "", "the tenant that owns the webhook (required)")
	c.Flags().StringVar(&req.Topic, "topic", "", "the topic or topic pattern of its events (required)")
	c.Flags().StringVar(&req.Address, "url", "", "the webhook's address: the https URL that receives the events (required)")
	c.Flags().StringVar(&secretFlag, "secret", "", "its signing secret, whsec_... (default: a random one)")
	c.Flags().StringVar(&filter, "filter", "", "a CEL expression over the event; only events it passes are delivered")
	c.Flags().StringArrayVar(&headers, "header", nil, "a header of every delivery, Name=value (repeatable)")
	c.Flags().StringArrayVar(&apiKeys, "api-key-header", nil, "api-key authorization: a header carrying a key, Name=value (repeatable)")
	return c
}

// parsePairs reads Name=value flags. Its errors never hold a value.
func parsePairs(flag string, vals []string) (registry.Pairs, error) {
	var out registry.Pairs
	for i, v := range vals {
		name, value, ok := strings.Cut(v, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("invalid %s (number %d): use Name=value", flag, i+1)
		}
		out = append(out, registry.Pair{Name: name, Value: value})
	}
	return out, nil
}

// webhookIDArg reads a webhook id given as a number or as its
// destination name, wh-<id>.
func webhookIDArg(s string) (uint64, error) {
	if id, err := strconv.ParseUint(s, 10, 64); err == nil {
		return id, nil
	}
	if id, ok := relay.WebhookID(s); ok {
		return id, nil
	}
	return 0, fmt.Errorf("invalid webhook id %q: use the number that 'caddy hookrelay webhooks list' shows", s)
}

func webhooksDeleteCommand() *cobra.Command {
	var af adminFlags
	c := &cobra.Command{
		Use:   "delete <id>",
		Short: "Delete a registered webhook, whatever its tenant; what waits for it is dropped",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := webhookIDArg(args[0])
			if err != nil {
				return err
			}
			var resp webhookDeletedResponse
			if err := af.call(http.MethodDelete, "/hookrelay/webhooks/"+strconv.FormatUint(id, 10), nil, &resp); err != nil {
				return err
			}
			w := resp.Webhook
			fmt.Fprintf(cmd.OutOrStdout(), "deleted webhook %d of tenant %s (%s -> %s)\n", w.ID, w.Tenant, w.Topic, w.Address)
			return nil
		},
	}
	af.add(c)
	return c
}

func webhooksRotateCommand() *cobra.Command {
	var af adminFlags
	c := &cobra.Command{
		Use:   "rotate <id>",
		Short: "Give a registered webhook a new signing secret; prints it once",
		Long: `Give a registered webhook a new random signing secret, printed only this
once. Deliveries carry a signature with the previous secret too for the
rotation grace period (the webhooks block's rotation_grace, 24h by
default), so that the receiver can switch.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := webhookIDArg(args[0])
			if err != nil {
				return err
			}
			var resp webhookSecretResponse
			if err := af.call(http.MethodPost, "/hookrelay/webhooks/"+strconv.FormatUint(id, 10)+"/rotate", nil, &resp); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "rotated the signing secret of webhook %d (tenant %s)\n", resp.Webhook.ID, resp.Webhook.Tenant)
			fmt.Fprintf(out, "new signing secret, shown only this once: %s\n", resp.Secret)
			fmt.Fprintln(out, "the previous secret keeps signing beside it for the rotation grace period")
			return nil
		},
	}
	af.add(c)
	return c
}
