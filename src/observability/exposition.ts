// The Prometheus text format (version 0.0.4), laid out as APISIX's exporter (nginx-lua-prometheus)
// lays it out: one HELP and TYPE per metric, series sorted by labels, histogram buckets with
// zero-padded `le` bounds ("00005.0"), then `_count` and `_sum`.
import type { MetricType } from './metrics-store.ts';

export interface Sample {
  labelNames: readonly string[];
  labelValues: readonly string[];
  value: number;
  /** Histograms: bucket counts (not cumulative; the last is `+Inf`), bounds and sum. */
  buckets?: readonly number[];
  bounds?: readonly number[];
  sum?: number;
}

export interface MetricFamily {
  name: string;
  help: string;
  type: MetricType;
  samples: Sample[];
}

export function renderExposition(families: readonly MetricFamily[]): string {
  const out: string[] = [];
  for (const family of [...families].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (family.samples.length === 0) continue;
    out.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`);
    const samples = family.samples
      .map((s) => ({ s, labels: labelPairs(s.labelNames, s.labelValues) }))
      .sort((a, b) => (a.labels < b.labels ? -1 : a.labels > b.labels ? 1 : 0));
    for (const { s, labels } of samples) {
      if (family.type !== 'histogram') {
        out.push(`${family.name}${labels ? `{${labels}}` : ''} ${formatNumber(s.value)}`);
        continue;
      }
      const bounds = s.bounds ?? [];
      const format = boundFormat(bounds);
      const prefix = labels ? `${labels},` : '';
      let cumulative = 0;
      bounds.forEach((bound, i) => {
        cumulative += s.buckets?.[i] ?? 0;
        out.push(`${family.name}_bucket{${prefix}le="${format(bound)}"} ${cumulative}`);
      });
      cumulative += s.buckets?.[bounds.length] ?? 0;
      out.push(`${family.name}_bucket{${prefix}le="+Inf"} ${cumulative}`);
      out.push(`${family.name}_count${labels ? `{${labels}}` : ''} ${formatNumber(s.value)}`);
      out.push(`${family.name}_sum${labels ? `{${labels}}` : ''} ${formatNumber(s.sum ?? 0)}`);
    }
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

function labelPairs(names: readonly string[], values: readonly string[]): string {
  return names.map((name, i) => `${name}="${escapeLabel(values[i] ?? '')}"`).join(',');
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/**
 * nginx-lua-prometheus writes every bound with as many digits as the largest one and as many
 * decimals as the most precise one (at least one), zero-padded: 1 and 60000 become "00001.0" and
 * "60000.0". Dashboards made for APISIX match these strings.
 */
function boundFormat(bounds: readonly number[]): (bound: number) => string {
  let order = 1;
  let precision = 1;
  for (const bound of bounds) {
    order = Math.max(order, Math.floor(Math.log10(Math.abs(bound) || 1)) + 1);
    const text = String(bound);
    const dot = text.indexOf('.');
    if (dot !== -1) precision = Math.max(precision, text.length - dot - 1);
  }
  const width = order + precision + 1;
  return (bound) => bound.toFixed(precision).padStart(width, '0');
}
