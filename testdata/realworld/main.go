// Command realworld is a small program with a real-world dependency
// closure (cobra, prometheus client_golang, golang.org/x/...), used by
// ocigo's end-to-end checks. It serves nothing by default; it just wires
// the libraries together.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"golang.org/x/text/cases"
	"golang.org/x/text/language"
)

var greetings = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "realworld_greetings_total",
	Help: "Number of greetings printed.",
})

func main() {
	reg := prometheus.NewRegistry()
	reg.MustRegister(greetings)

	var listen string
	root := &cobra.Command{
		Use:   "realworld [name...]",
		Short: "Greet names and optionally serve metrics",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"world"}
			}
			title := cases.Title(language.English)
			g, _ := errgroup.WithContext(context.Background())
			out := make([]string, len(args))
			for i, a := range args {
				g.Go(func() error {
					out[i] = "Hello, " + title.String(a) + "!"
					return nil
				})
			}
			if err := g.Wait(); err != nil {
				return err
			}
			for _, line := range out {
				fmt.Fprintln(cmd.OutOrStdout(), line)
				greetings.Inc()
			}
			if listen == "" {
				return nil
			}
			srv := &http.Server{
				Addr:              listen,
				Handler:           promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
				ReadHeaderTimeout: 5 * time.Second,
			}
			return srv.ListenAndServe()
		},
	}
	root.Flags().StringVar(&listen, "listen", "", "serve /metrics on this address")
	if err := root.Execute(); err != nil {
		os.Exit(1)
	}
}
