// Command containers-policy evaluates a containers-policy.json(5) against an
// image in a registry, the way `skopeo copy` / `podman pull` do before they
// copy anything: it reads the image's signatures (with registries.d
// `use-sigstore-attachments: true`, cosign's `sha256-<hex>.sig` tags) and asks
// github.com/containers/image's signature package whether the policy accepts
// the image. ocigo's integration tests (tests/signing.rs) use it because the
// skopeo on the test machines (Debian's) has sigstore support patched out.
//
// Usage:
//
//	containers-policy --policy FILE --registries-d DIR [--insecure] docker://HOST:PORT/REPO:TAG
//
// Prints "allowed" and exits 0 when the policy accepts the image; prints the
// reason and exits 1 when it does not; exits 2 on bad usage.
//
// Build without cgo: go build -tags containers_image_openpgp
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/containers/image/v5/docker"
	"github.com/containers/image/v5/image"
	"github.com/containers/image/v5/signature"
	"github.com/containers/image/v5/types"
)

func main() {
	policyPath := flag.String("policy", "", "containers-policy.json(5) file")
	registriesD := flag.String("registries-d", "", "registries.d directory (containers-registries.d(5))")
	insecure := flag.Bool("insecure", false, "plain HTTP / no TLS verification for the registry")
	flag.Parse()
	if *policyPath == "" || *registriesD == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: containers-policy --policy FILE --registries-d DIR [--insecure] docker://HOST:PORT/REPO:TAG")
		os.Exit(2)
	}
	if err := check(*policyPath, *registriesD, *insecure, flag.Arg(0)); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("allowed")
}

func check(policyPath, registriesD string, insecure bool, ref string) error {
	// Only the docker transport: alltransports would pull in
	// containers/storage (and cgo).
	rest, ok := strings.CutPrefix(ref, "docker:")
	if !ok {
		return fmt.Errorf("%q: only docker:// references are supported", ref)
	}
	sys := &types.SystemContext{
		SignaturePolicyPath: policyPath,
		RegistriesDirPath:   registriesD,
	}
	if insecure {
		sys.DockerInsecureSkipTLSVerify = types.OptionalBoolTrue
	}
	policy, err := signature.NewPolicyFromFile(policyPath)
	if err != nil {
		return fmt.Errorf("reading policy: %w", err)
	}
	pc, err := signature.NewPolicyContext(policy)
	if err != nil {
		return fmt.Errorf("policy context: %w", err)
	}
	defer pc.Destroy()

	imgRef, err := docker.ParseReference(rest)
	if err != nil {
		return fmt.Errorf("parsing %q: %w", ref, err)
	}
	ctx := context.Background()
	src, err := imgRef.NewImageSource(ctx, sys)
	if err != nil {
		return fmt.Errorf("opening %q: %w", ref, err)
	}
	defer src.Close()

	allowed, err := pc.IsRunningImageAllowed(ctx, image.UnparsedInstance(src, nil))
	if err != nil {
		return fmt.Errorf("policy refuses %s: %w", ref, err)
	}
	if !allowed {
		return fmt.Errorf("policy refuses %s", ref)
	}
	return nil
}
