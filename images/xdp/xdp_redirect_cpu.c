// SPDX-License-Identifier: GPL-2.0
/*
 * bqlab: redirect every frame to CPU 0 through a cpumap (pages then travel
 * to another CPU's kthread and come back to the page_pool from there).
 * Populate the map before use, e.g. qsize 1024 for CPU 0:
 *   bpftool map update name cpu_map key hex 00 00 00 00 value hex 00 04 00 00 00 00 00 00
 * A missing entry passes the frame to the stack.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_CPUMAP);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct bpf_cpumap_val);
} cpu_map SEC(".maps");

SEC("xdp")
int xdp_redirect_cpu(struct xdp_md *ctx)
{
	return bpf_redirect_map(&cpu_map, 0, XDP_PASS);
}

char _license[] SEC("license") = "GPL";
