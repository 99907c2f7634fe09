#!/usr/bin/env python3
"""The table of tools/bench/vs_llamacpp.sh from its JSON lines: per engine and configuration, pp512 and tg128 tok/s
(mean ± stddev over the rounds), weight GB per token, decode GB/s, and the ratios to llama.cpp and to the probe."""
import json
import statistics
import sys


def ms(xs):
    if not xs:
        return float("nan"), float("nan")
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def main() -> None:
    rows, probes = {}, []
    for line in open(sys.argv[1]):
        d = json.loads(line)
        if "probe_before_gbps" in d or "probe_after_gbps" in d:
            probes.append(d.get("probe_before_gbps", d.get("probe_after_gbps")))
            continue
        r = rows.setdefault(d["engine"], {"pp": [], "tg": [], "gb": None, "probe": []})
        if d["engine"] == "llama.cpp":
            r["pp"] += d["pp_tok_s"]
            r["tg"] += d["tg_tok_s"]
            r["gb"] = d["weight_bytes_per_token"] / 1e9
        else:
            r["pp"].append(d["prefill_tok_s"])
            r["tg"].append(d["decode_tok_s"])
            r["gb"] = d["weight_bytes_per_token"] / 1e9
            r["probe"].append(d["read_bw_gb_s"])
    probe = statistics.median(probes + [p for r in rows.values() for p in r["probe"]])
    base_pp, base_tg = ms(rows.get("llama.cpp", {}).get("pp", []))[0], ms(rows.get("llama.cpp", {}).get("tg", []))[0]
    print(f"read probe: {', '.join(f'{p:.1f}' for p in probes)} GB/s before/after; median of all probes {probe:.1f} GB/s")
    print()
    print("| engine, configuration | pp512 tok/s | tg128 tok/s | pp vs llama.cpp | tg vs llama.cpp | GB / token | decode GB/s | of probe |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        (pp, pps), (tg, tgs) = ms(r["pp"]), ms(r["tg"])
        gbs = tg * r["gb"]
        print(f"| {name} | {pp:.1f} ± {pps:.1f} | {tg:.2f} ± {tgs:.2f} | {pp / base_pp:.2f}× | {tg / base_tg:.2f}× | {r['gb']:.2f} | "
              f"{gbs:.1f} | {gbs / probe:.0%} |")


if __name__ == "__main__":
    main()
