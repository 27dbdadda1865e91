package dynamic

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// TestConcurrentExecutions: executions of one webhook run side by side
// while the merchant replaces it: every one answers 200, signed with the
// secret kept across the replacements, with the order of the template
// in force (the old one's or the new one's, never a mix or an error).
func TestConcurrentExecutions(t *testing.T) {
	shop := fixedMerchant(t, workedAnswer)
	start(t, config{})
	reg := workedRegistration(shop.URL + "/tip")
	secret := kfc.register(t, reg, http.StatusCreated)
	doubled := `{"order": {"total": "{{ add .request.order.total (add .result.tip .result.tip) }}", "custom_fields": {"tip": "{{ add .result.tip .result.tip }}"}}}`
	valid := map[string]bool{
		workedResult: true,
		`{"order":{"custom_fields":{"tip":"2.40"},"order_id":"A1","total":"12.50"}}`: true,
	}

	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	url := baseURL + kfc.webhooks() + "/set_tip/execute"
	client := &http.Client{Timeout: 10 * time.Second}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				errs <- executeOnce(client, url, secret, valid)
			}
		}()
	}
	for i := range 6 {
		if i%2 == 0 {
			reg["response_template"] = doubled
		} else {
			reg["response_template"] = workedTemplate
		}
		kfc.register(t, reg, http.StatusOK)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := shop.Count(); n != workers*each {
		t.Errorf("the merchant got %d calls, want %d", n, workers*each)
	}
}

// executeOnce runs one execution from a goroutine of its own.
func executeOnce(client *http.Client, url, secret string, valid map[string]bool) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(workedOrder)))
	if err != nil {
		return err
	}
	req.Header["merchant_token"] = []string{kfc.token}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !valid[string(body)] {
		return fmt.Errorf("execute answered %d %s", resp.StatusCode, body)
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return err
	}
	if err := wh.Verify(body, resp.Header); err != nil {
		return fmt.Errorf("answer %s not signed with the secret: %v", body, err)
	}
	return nil
}
