package serve

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are a server's Prometheus metrics, on a registry of its own.
// Their labels take only known values (a model the server serves, a method
// loupe has, a route, a status), "" otherwise, so that requests cannot
// grow the series without bound.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec   // model, route, method, code
	failures *prometheus.CounterVec   // model, route, method, reason
	latency  *prometheus.HistogramVec // model, route, method
	queue    prometheus.Gauge
	running  prometheus.Gauge
	fitted   *prometheus.CounterVec // model, method
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "loupe_requests_total", Help: "Requests answered, by model, route (predict, explain, infer), method and HTTP status.",
	}, []string{"model", "route", "method", "code"})
	m.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "loupe_request_failures_total", Help: "Requests that failed, by model, route, method and reason (bad_request, too_large, busy, deadline, panic, error).",
	}, []string{"model", "route", "method", "reason"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "loupe_request_duration_seconds", Help: "Time to answer a request, waiting for a slot included, by model, route and method.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
	}, []string{"model", "route", "method"})
	m.queue = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "loupe_queue_length", Help: "Requests waiting for a slot to run.",
	})
	m.running = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "loupe_requests_running", Help: "Requests running a model (holding a slot).",
	})
	m.fitted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "loupe_explanations_fitted_total", Help: "Explanations whose step or sample count was lowered to fit their deadline (fit_deadline).",
	}, []string{"model", "method"})
	m.reg.MustRegister(m.requests, m.failures, m.latency, m.queue, m.running, m.fitted,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}
