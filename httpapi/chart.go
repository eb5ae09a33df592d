package httpapi

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/pyramid-crm/pyramid/view"
)

// Value chart geometry, in SVG user units.
const (
	chartW, chartH         = 640.0, 220.0
	chartLeft, chartRight  = 64.0, 12.0
	chartTop, chartBottom  = 12.0, 28.0
	chartPlotW, chartPlotH = chartW - chartLeft - chartRight, chartH - chartTop - chartBottom
)

// chart is a line chart of an account's current and potential value over
// time, geometry precomputed so the template only places it.
type chart struct {
	Points              int
	Current, Potential  string // polyline points
	Dots                []dot  // when there is a single point
	YTicks              []tick
	XTicks              []tick
	W, H                float64
	PlotLeft, PlotRight float64
	PlotTop, PlotBottom float64
}

type dot struct {
	X, YCurrent, YPotential float64
}

type tick struct {
	Pos    float64
	Label  string
	Anchor string // SVG text-anchor: the ends are aligned inwards to stay inside
}

func valueChart(ps []view.Point) chart {
	c := chart{Points: len(ps), W: chartW, H: chartH, PlotLeft: chartLeft, PlotRight: chartW - chartRight,
		PlotTop: chartTop, PlotBottom: chartTop + chartPlotH}
	if len(ps) == 0 {
		return c
	}
	top := 0.0
	for _, p := range ps {
		top = max(top, float64(p.Current), float64(p.Potential))
	}
	top = niceCeil(top)
	t0, t1 := ps[0].At, ps[len(ps)-1].At
	x := func(at int64) float64 {
		if t1 == t0 {
			return chartLeft + chartPlotW/2
		}
		return chartLeft + chartPlotW*float64(at-t0)/float64(t1-t0)
	}
	y := func(v float32) float64 { return chartTop + chartPlotH*(1-float64(v)/top) }
	var cur, pot strings.Builder
	for i, p := range ps {
		if i > 0 {
			cur.WriteByte(' ')
			pot.WriteByte(' ')
		}
		xi := coord(x(p.At))
		cur.WriteString(xi + "," + coord(y(p.Current)))
		pot.WriteString(xi + "," + coord(y(p.Potential)))
	}
	c.Current, c.Potential = cur.String(), pot.String()
	if len(ps) == 1 {
		c.Dots = []dot{{x(t0), y(ps[0].Current), y(ps[0].Potential)}}
	}
	for _, f := range []float64{0, 0.5, 1} {
		c.YTicks = append(c.YTicks, tick{chartTop + chartPlotH*(1-f), compact(top * f), "end"})
	}
	if t1 == t0 {
		c.XTicks = append(c.XTicks, tick{x(t0), dateLabel(t0), "middle"})
	} else {
		c.XTicks = append(c.XTicks, tick{x(t0), dateLabel(t0), "start"}, tick{x(t1), dateLabel(t1), "end"})
	}
	return c
}

func coord(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func dateLabel(ns int64) string {
	t := time.Unix(0, ns).UTC()
	if t.Hour() == 0 && t.Minute() == 0 {
		return t.Format("2006-01-02")
	}
	return t.Format("2006-01-02 15:04")
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, so the axis
// reads in round numbers; 0 becomes 1 so an all-zero history still draws.
func niceCeil(v float64) float64 {
	if !(v > 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p*(1+1e-12) {
			return m * p
		}
	}
	return 10 * p
}

// compact writes an axis amount: 0, 500, 2.5k, 1M, 1.5bn.
func compact(v float64) string {
	for _, u := range []struct {
		div    float64
		suffix string
	}{{1e9, "bn"}, {1e6, "M"}, {1e3, "k"}} {
		if v >= u.div {
			return strconv.FormatFloat(v/u.div, 'f', -1, 64) + u.suffix
		}
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
