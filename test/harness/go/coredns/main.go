// CoreDNS for the test cluster, with only the plugins its Corefile uses
// (test/harness/node-addons.ts). Upstream's main imports every plugin, which pulls in
// the AWS, Azure, Google Cloud and tracing SDKs and several minutes of compilation for
// code the cluster never runs. Same coremain, same plugins, fewer of them: the way
// CoreDNS documents building with a chosen plugin set.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() {
	coremain.Run()
}
