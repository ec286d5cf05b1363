package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// sample is one figure measured several times, in its own unit.
type sample []float64

func (s sample) sorted() []float64 {
	c := slices.Clone([]float64(s))
	slices.Sort(c)
	return c
}

// median is the middle value (the mean of the middle two for an even
// count); NaN when s is empty.
func (s sample) median() float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	c := s.sorted()
	n := len(c)
	if n%2 == 1 {
		return c[n/2]
	}
	return (c[n/2-1] + c[n/2]) / 2
}

func (s sample) min() float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	return slices.Min([]float64(s))
}

func (s sample) max() float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	return slices.Max([]float64(s))
}

// format prints "median [min–max]", or the one value of a single run.
func (s sample) format(f func(float64) string) string {
	switch len(s) {
	case 0:
		return "—"
	case 1:
		return f(s[0])
	}
	return fmt.Sprintf("%s [%s–%s]", f(s.median()), f(s.min()), f(s.max()))
}

// ms converts a duration to float milliseconds, the unit of every time
// sample.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// fmtMS prints milliseconds with a unit that keeps 3 significant digits.
func fmtMS(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case math.Abs(v) >= 1000:
		return fmt.Sprintf("%.2f s", v/1000)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.2f ms", v)
	}
}

// fmtRate prints a rate per second.
func fmtRate(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case v >= 100:
		return fmt.Sprintf("%.0f/s", v)
	case v >= 10:
		return fmt.Sprintf("%.1f/s", v)
	default:
		return fmt.Sprintf("%.2f/s", v)
	}
}

// fmtRatio prints a ratio such as "73x" or "1.04x".
func fmtRatio(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "—"
	case v >= 10:
		return fmt.Sprintf("%.0fx", v)
	default:
		return fmt.Sprintf("%.2fx", v)
	}
}

// percentile returns the p-th percentile (0..100) of vals by the
// nearest-rank method; 0 when vals is empty.
func percentile(vals []time.Duration, p float64) time.Duration {
	if len(vals) == 0 {
		return 0
	}
	c := slices.Clone(vals)
	slices.Sort(c)
	rank := int(math.Ceil(p / 100 * float64(len(c))))
	rank = min(max(rank, 1), len(c))
	return c[rank-1]
}
