// Fast 32-bit string hashing for the consistent-hash ring: FNV-1a over UTF-16 code units (equal to
// byte-wise FNV-1a for ASCII) followed by the murmur3 finalizer for avalanche. The hash can be
// fed incrementally, so a `vars_combinations` key is hashed without building the joined string.

export const HASH_INIT = 0x811c9dc5;

/** Feeds `s` into an FNV-1a state. */
export function hashFeed(state: number, s: string): number {
  let h = state;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h;
}

/** Feeds the four bytes of a 32-bit integer into an FNV-1a state. */
export function hashFeedInt(state: number, n: number): number {
  let h = state;
  h ^= n & 0xff;
  h = Math.imul(h, 0x01000193);
  h ^= (n >>> 8) & 0xff;
  h = Math.imul(h, 0x01000193);
  h ^= (n >>> 16) & 0xff;
  h = Math.imul(h, 0x01000193);
  h ^= n >>> 24;
  h = Math.imul(h, 0x01000193);
  return h;
}

/** murmur3 fmix32: turns an FNV state into a well-mixed unsigned 32-bit hash. */
export function hashFinish(state: number): number {
  let h = state;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Unsigned 32-bit hash of a string. */
export function hashString(s: string): number {
  return hashFinish(hashFeed(HASH_INIT, s));
}
