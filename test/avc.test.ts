import { describe, expect, it } from "vitest";
import { isStorageDenial, parseAvc } from "../collector/selinux/avc.js";

// Records in the formats the kernel and auditd write. The first is quoted from
// containers/container-selinux#134 (a real audit.log), the second from k3s-io/k3s-selinux#63
// (the libc RELRO denial), the third is the kernel's printk form without auditd
// (bootc-dev/bootc#1174); the others vary those by the rules in kernel/audit.c.
const AUDITD =
  'type=AVC msg=audit(1569931044.587:1266): avc:  denied  { read } for  pid=8643 comm="dumb-init" path="/lib/x86_64-linux-gnu/libc-2.28.so" dev="sda3" ino=248078 scontext=system_u:system_r:container_t:s0:c263,c996 tcontext=system_u:object_r:var_t:s0 tclass=file permissive=0';
const RELRO =
  'type=AVC msg=audit(1700000000.215:8): avc:  denied  { read } for  pid=3968810 comm="nginx" path="/usr/lib/x86_64-linux-gnu/libc.so.6" dev="dm-10" ino=548935078 scontext=system_u:system_r:container_t:s0:c217,c459 tcontext=system_u:object_r:unlabeled_t:s0 tclass=file permissive=0';
const KERNEL =
  'audit: type=1400 audit(1741703693.215:8): avc:  denied  { map } for  pid=2201 comm="sh" path="/usr/lib64/libc.so.6" dev="vdb" ino=1311 scontext=system_u:system_r:container_t:s0:c1,c2 tcontext=system_u:object_r:var_lib_t:s0 tclass=file permissive=1';

describe("AVC records", () => {
  it("parses an auditd line: double spaces, quoted strings, numbers", () => {
    const record = parseAvc(AUDITD);
    expect(record).toMatchObject({
      time: "2019-10-01T11:57:24.587Z",
      serial: 1266,
      denied: true,
      permissions: ["read"],
      pid: 8643,
      comm: "dumb-init",
      path: "/lib/x86_64-linux-gnu/libc-2.28.so",
      dev: "sda3",
      ino: 248078,
      tclass: "file",
      permissive: false,
    });
    expect(record?.scontext).toBe("system_u:system_r:container_t:s0:c263,c996");
  });

  it("decodes hex-encoded untrusted strings, a node= prefix and ENRICHED trailers", () => {
    const path = Buffer.from("/var/lib/my images/libc.so.6").toString("hex").toUpperCase();
    const line = `node=worker-3 type=AVC msg=audit(1700000000.001:42): avc:  denied  { read execute } for  pid=7 comm=${Buffer.from("sh sh").toString("hex").toUpperCase()} path=${path} dev="vdb" ino=9 scontext=system_u:system_r:container_t:s0 tcontext=system_u:object_r:default_t:s0 tclass=file permissive=0\x1dAUID="unset" UID="root"`;
    const record = parseAvc(line);
    expect(record?.node).toBe("worker-3");
    expect(record?.path).toBe("/var/lib/my images/libc.so.6");
    expect(record?.comm).toBe("sh sh");
    expect(record?.permissions).toEqual(["read", "execute"]);
    expect(record?.permissive).toBe(false);
  });

  it("parses the kernel's printk form and journald's MESSAGE", () => {
    expect(parseAvc(KERNEL)).toMatchObject({ dev: "vdb", ino: 1311, permissive: true, permissions: ["map"] });
    const journald = parseAvc(`AVC ${AUDITD.slice(AUDITD.indexOf("avc:"))}`);
    expect(journald).toMatchObject({ comm: "dumb-init", time: null });
  });

  it("keeps container denials on store-ish types, not others", () => {
    expect(isStorageDenial(parseAvc(AUDITD)!)).toBe(true);
    expect(isStorageDenial(parseAvc(RELRO)!)).toBe(true);
    const host = AUDITD.replace("system_r:container_t", "system_r:httpd_t");
    expect(isStorageDenial(parseAvc(host)!)).toBe(false);
    const port = AUDITD.replace("tclass=file", "tclass=tcp_socket");
    expect(isStorageDenial(parseAvc(port)!)).toBe(false);
    const granted = AUDITD.replace("avc:  denied", "avc:  granted");
    expect(isStorageDenial(parseAvc(granted)!)).toBe(false);
  });

  it("ignores lines that are not AVC records", () => {
    expect(parseAvc("type=SYSCALL msg=audit(1.2:3): arch=c000003e syscall=10 success=no")).toBeUndefined();
    expect(parseAvc("avc:  denied  { read } for  pid=1 comm=x")).toBeUndefined();
  });
});
