package main

import (
	"strings"
	"testing"
	"time"
)

func TestDurationsReadLikeThePythonProducers(t *testing.T) {
	for text, want := range map[string]time.Duration{
		"60": time.Minute, "60s": time.Minute, "1.5m": 90 * time.Second, "2h": 2 * time.Hour,
		"500ms": 500 * time.Millisecond,
	} {
		got, err := parseDuration(text)
		if err != nil || got != want {
			t.Errorf("%q: got %v %v, want %v", text, got, err, want)
		}
	}
	for _, bad := range []string{"", "m", "-1s", "1d", "9999999h"} {
		if _, err := parseDuration(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}

func TestFlagsAreCheckedNamingTheFlag(t *testing.T) {
	o, err := ParseOptions([]string{"--bootstrap-servers", "127.0.0.1:9092, [::1]:9093", "--seed", "5"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Topic != "events" || len(o.Brokers) != 2 || o.Brokers[1] != "[::1]:9093" || o.Seed != 5 {
		t.Fatalf("%+v", o)
	}
	o, err = ParseOptions(nil)
	if err != nil || o.Target != defaultTarget || o.Rate != 1000 || o.Brokers != nil {
		t.Fatalf("defaults: %+v %v", o, err)
	}
	for args, flag := range map[string]string{
		"--rate 0":                                    "--rate",
		"--metrics 0":                                 "--metrics",
		"--late-fraction 1.5":                         "--late-fraction",
		"--spike-probability -0.1":                    "--spike-probability",
		"--out-of-order-ms -1":                        "--out-of-order-ms",
		"--duration forever":                          "--duration",
		"--bootstrap-servers localhost":               "--bootstrap-servers",
		"--bootstrap-servers h:99999":                 "--bootstrap-servers",
		"--bootstrap-servers h:1 --topic a/b":         "--topic",
		"--bootstrap-servers h:1 --dry-run":           "--dry-run",
		"--bootstrap-servers h:1 --target http://x:1": "--target",
		"--topic t":                                   "--topic",
		"--target ftp://x":                            "--target",
		"--bootstrap-servers h:1 --trace-ratio 2":     "--trace-ratio",
		"--trace-ratio 0.5":                           "--trace-ratio",
		"--otlp-endpoint http://x:1":                  "--otlp-endpoint",
		"--bootstrap-servers h:1 --trace-ratio 1 --otlp-endpoint x:1":           "--otlp-endpoint",
		"--bootstrap-servers h:1 --trace-ratio 1 --otlp-endpoint http://x/v1/t": "--otlp-endpoint",
	} {
		_, err := ParseOptions(strings.Fields(args))
		if err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("%s: got %v, want an error naming %s", args, err, flag)
		}
	}
}
