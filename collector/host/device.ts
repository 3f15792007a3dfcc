/** Splits a Linux dev_t as glibc's gnu_dev_major/gnu_dev_minor do (32-bit major and minor), giving "major:minor". */
export function deviceId(dev: bigint): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & 0xfffff000n);
  const minor = (dev & 0xffn) | ((dev >> 12n) & 0xffffff00n);
  return `${major}:${minor}`;
}
