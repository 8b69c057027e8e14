package bus

import (
	"context"
	"log/slog"
)

// WhileLeading serves a subject only while this process leads: a hub runs
// its writer's relay beside the stream's leader, so that appends go to the
// local node and the writers of the hub's processes do not take turns (each
// turn would cost a conflict and a rebuild). Give Lead to
// natsnode.WatchStreamLeader. Configure the fields before the first Lead;
// Lead is for one goroutine.
type WhileLeading struct {
	Bus     *Bus
	Subject string
	Queue   string
	Handler func(ctx context.Context, data []byte) []byte
	// OnLead, if set, runs each time the process becomes the leader, before
	// it serves: a writer resyncs there, since others may have written
	// while this process followed.
	OnLead func()
	// Logger receives one line per change. Default slog.Default().
	Logger *slog.Logger

	stop func()
}

// Lead starts serving when leading and stops (waiting for the requests in
// flight) when not.
func (w *WhileLeading) Lead(leading bool) {
	log := w.Logger
	if log == nil {
		log = slog.Default()
	}
	if !leading {
		if w.stop != nil {
			w.stop()
			w.stop = nil
			log.Info("stopped serving relayed requests", "subject", w.Subject)
		}
		return
	}
	if w.stop != nil {
		return
	}
	if w.OnLead != nil {
		w.OnLead()
	}
	stop, err := w.Bus.Serve(w.Subject, w.Queue, w.Handler)
	if err != nil {
		log.Error("serve relayed requests", "subject", w.Subject, "err", err)
		return
	}
	w.stop = stop
	log.Info("serving relayed requests", "subject", w.Subject)
}
