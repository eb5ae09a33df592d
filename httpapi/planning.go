package httpapi

import (
	"net/http"

	"github.com/pyramid-crm/pyramid/plan"
)

// The planning endpoints summarise the accounts this instance owns (the
// partitions listed); across instances, the ClickHouse views goal_summary
// and coverage_plan hold the whole picture.

type goalsBody struct {
	plan.Goals
	Partitions []int `json:"partitions"`
}

type coverageBody struct {
	plan.Coverage
	Partitions []int `json:"partitions"`
}

// summarise runs the plan over every owned account.
func (s *server) summarise() *plan.Summariser {
	sum := plan.New(s.Params)
	s.Store.Scan(sum.Add)
	return sum
}

func (s *server) goals(w http.ResponseWriter, _ *http.Request) {
	parts := s.Store.Partitions()
	s.writeBody(w, goalsBody{s.summarise().Goals(), parts})
}

func (s *server) coverage(w http.ResponseWriter, _ *http.Request) {
	parts := s.Store.Partitions()
	s.writeBody(w, coverageBody{s.summarise().Coverage(), parts})
}

func (s *server) writeBody(w http.ResponseWriter, v any) {
	b, err := marshal(v)
	if err != nil {
		s.Logger.Error("encode response", "err", err)
		jsonError(w, http.StatusInternalServerError, "cannot encode the response")
		return
	}
	writeJSON(w, http.StatusOK, b)
}
