// Pattern lists shared by the security plugins, compiled once per config version:
// - regex lists as APISIX runs them through ngx.re.find (PCRE, unanchored, "any pattern found"):
//   ua-restriction, uri-blocker, cors;
// - host lists where an entry starting with `*` matches by suffix: referer-restriction.
import { compilePcre } from '../../expr/index.ts';

/** Answers whether a subject matches a compiled list. */
export type StringTest = (subject: string) => boolean;

// JS RegExp reasons worded as PCRE2 words them, so config errors read as APISIX's do.
const PCRE2_REASONS: Record<string, string> = {
  'Unterminated group': 'missing closing parenthesis',
  "Unmatched ')'": 'unmatched closing parenthesis',
  'Nothing to repeat': 'quantifier does not follow a repeatable item',
  'Unterminated character class': 'missing terminating ] for character class',
  'numbers out of order in {} quantifier': 'numbers out of order in {} quantifier',
  'Range out of order in character class': 'range out of order in character class',
  'Duplicate capture group name': 'two named subpatterns have the same name (PCRE2_DUPNAMES not set)',
  '\\ at end of pattern': '\\ at end of pattern',
  'Invalid group': 'unrecognized character after (? or (?-',
};

/**
 * Why `pattern` does not compile, as APISIX reports it
 * (`pcre2_compile() failed: missing closing parenthesis in "^b("`); undefined when it compiles.
 */
export function pcreError(pattern: string, caseless = false): string | undefined {
  try {
    compilePcre(pattern, caseless);
    return undefined;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const reason = /^Invalid regular expression: \/.*\/[a-z]*: (.*)$/s.exec(message)?.[1] ?? message;
    return `pcre2_compile() failed: ${PCRE2_REASONS[reason] ?? reason.charAt(0).toLowerCase() + reason.slice(1)} in "${pattern}"`;
  }
}

/** The error of the first pattern in `patterns` that does not compile. */
export function checkPcreList(patterns: readonly string[] | undefined, caseless = false): string | undefined {
  for (const pattern of patterns ?? []) {
    const err = pcreError(pattern, caseless);
    if (err) return err;
  }
  return undefined;
}

/**
 * True when any of `patterns` is found in the subject (unanchored, as ngx.re.find). The patterns
 * must have passed `checkPcreList`. Each keeps its own RegExp, so a leading `(?i)` in one pattern
 * affects that pattern only.
 */
export function compileRegexList(patterns: readonly string[], caseless = false): StringTest {
  const regexes = patterns.map((p) => compilePcre(p, caseless));
  if (regexes.length === 1) {
    const only = regexes[0];
    return (subject) => only.test(subject);
  }
  return (subject) => {
    for (const re of regexes) if (re.test(subject)) return true;
    return false;
  };
}

/**
 * Host list as APISIX's referer-restriction reads it: an entry starting with `*` matches every
 * host ending with the rest of the entry (`*.example.com` matches `a.example.com`, not
 * `example.com`); any other entry must equal the host. Comparison is case-sensitive.
 */
export function compileHostMatcher(hosts: readonly string[]): StringTest {
  const exact = new Set<string>();
  const suffixes: string[] = [];
  for (const h of hosts) {
    if (h.startsWith('*')) suffixes.push(h.slice(1));
    else exact.add(h);
  }
  return (host) => {
    if (exact.has(host)) return true;
    for (const s of suffixes) if (host.endsWith(s)) return true;
    return false;
  };
}
