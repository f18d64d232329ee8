//! Turns hook events into records and applies them to the model.

use super::identity::FileKey;
use super::{keep, phdr_rec, Writer};
use crate::event::{Event, Kind};
use crate::payload::SlotReader;
use mapagent_record::model::{MAP_ANONYMOUS, MAP_FAILED, MAP_SHARED, MAP_SHARED_VALIDATE};
use mapagent_record::records::{self as rec, trigger, Record};
use mapagent_record::Bytes;

impl Writer {
    /// Writes a record and applies it to the model; true if it changed the model.
    pub(super) fn emit(&mut self, r: Record<'_>) -> bool {
        self.out.put(&r);
        // The agent tags model regions with when they appeared (see reconcile::placement).
        let ts = r.ts().unwrap_or(0);
        self.model.apply_event(&r, ts)
    }

    /// One event of the batch, with the payload its frame carried.
    pub(super) fn handle(&mut self, ev: &Event, slot: Option<&[u8]>) {
        let a = ev.a;
        let (ts, tid, errno) = (ev.ts, ev.tid, ev.err);
        match ev.kind {
            Kind::Mmap => {
                let (addr, len, prot, flags, fd, off, result) = (
                    a[0],
                    a[1],
                    a[2] as u32,
                    (a[2] >> 32) as u32,
                    a[3] as i64 as i32,
                    a[4],
                    a[5],
                );
                let ok = errno == 0 && result != MAP_FAILED;
                let shared = flags & 3 == MAP_SHARED || flags & 3 == MAP_SHARED_VALIDATE;
                let anon = flags & MAP_ANONYMOUS != 0;
                let key: Option<FileKey> =
                    (a[7] != 0).then_some(((a[6] >> 32) as u32, a[6] as u32, a[7]));
                if let (Some(k), Some(s)) = (key, slot) {
                    let p = SlotReader::new(s).bytes();
                    if !p.is_empty() {
                        self.ids.name(k, p.to_vec());
                    }
                }
                let ident = if ok && (!anon || shared) {
                    let mut id = self.ids.file(result, key, if anon { -1 } else { fd });
                    if anon && id.path.is_empty() {
                        id.path = b"/dev/zero (deleted)".to_vec();
                    }
                    Some(id)
                } else {
                    None
                };
                let empty = Vec::new();
                self.emit(Record::Mmap(rec::Mmap {
                    ts,
                    tid,
                    addr,
                    len,
                    prot,
                    flags,
                    fd,
                    offset: off,
                    result,
                    errno,
                    dev_major: ident.as_ref().map_or(0, |i| i.dev_major),
                    dev_minor: ident.as_ref().map_or(0, |i| i.dev_minor),
                    ino: ident.as_ref().map_or(0, |i| i.ino),
                    path: Bytes(ident.as_ref().map_or(&empty, |i| &i.path)),
                }));
            }
            Kind::Munmap => {
                let (addr, len, ret) = (a[0], a[1], a[2] as i64 as i32);
                self.emit(Record::Munmap(rec::Munmap {
                    ts,
                    tid,
                    addr,
                    len,
                    ret,
                    errno,
                }));
            }
            Kind::Mremap => {
                let (old, old_len, new_len, flags, new_addr, result) =
                    (a[0], a[1], a[2], a[3] as u32, a[4], a[5]);
                self.emit(Record::Mremap(rec::Mremap {
                    ts,
                    tid,
                    old_addr: old,
                    old_len,
                    new_len,
                    flags,
                    new_addr,
                    result,
                    errno,
                }));
            }
            Kind::Mprotect => {
                let (addr, len, prot, ret) = (a[0], a[1], a[2] as u32, a[3] as i64 as i32);
                self.emit(Record::Mprotect(rec::Mprotect {
                    ts,
                    tid,
                    addr,
                    len,
                    prot,
                    ret,
                    errno,
                }));
                if ret == 0 && prot & 5 == 5 {
                    self.keep_anon_elf(ts, addr);
                }
            }
            Kind::MemfdCreate => {
                let name = slot.map(|s| SlotReader::new(s).bytes()).unwrap_or(b"");
                self.out.put(&Record::MemfdCreate(rec::MemfdCreate {
                    ts,
                    tid,
                    name: Bytes(name),
                    flags: a[0] as u32,
                    fd: a[1] as i64 as i32,
                    errno,
                }));
            }
            Kind::Shmat => {
                let (shmid, addr, shmflg, result) =
                    (a[0] as i64 as i32, a[1], a[2] as i64 as i32, a[3]);
                let ok = errno == 0 && result != MAP_FAILED;
                let (mut size, mut key) = (0u64, 0i32);
                let mut ds: libc::shmid_ds = unsafe { core::mem::zeroed() };
                if ok && unsafe { libc::shmctl(shmid, libc::IPC_STAT, &mut ds) } == 0 {
                    size = ds.shm_segsz as u64;
                    key = ds.shm_perm.__key;
                }
                // The kernel's own line for the attachment gives its device and exact name.
                let region = if ok {
                    self.ids
                        .region_at(result)
                        .filter(|r| r.ino == shmid as u32 as u64)
                } else {
                    None
                };
                if ok && size == 0 {
                    size = region.as_ref().map_or(0, |r| r.end - result);
                }
                let name = match &region {
                    Some(r) => r.name.clone(),
                    None if ok => format!("/SYSV{:08x} (deleted)", key as u32).into_bytes(),
                    None => Vec::new(),
                };
                self.emit(Record::Shmat(rec::Shmat {
                    ts,
                    tid,
                    shmid,
                    addr,
                    shmflg,
                    result,
                    errno,
                    size,
                    key,
                    name: Bytes(&name),
                    dev_major: region.as_ref().map_or(0, |r| r.dev_major),
                    dev_minor: region.as_ref().map_or(0, |r| r.dev_minor),
                }));
            }
            Kind::Shmdt => {
                let (addr, ret) = (a[0], a[1] as i64 as i32);
                if !self.emit(Record::Shmdt(rec::Shmdt {
                    ts,
                    tid,
                    addr,
                    ret,
                    errno,
                })) && ret == 0
                {
                    // An attachment made before the agent started: let the kernel say.
                    self.note_trigger(trigger::SHM, ts, 0);
                }
            }
            Kind::Dlopen => {
                let mut r = SlotReader::new(slot.unwrap_or(&[]));
                let (filename, resolved) = (r.bytes(), r.bytes());
                self.note_trigger(trigger::DLOPEN, a[0], 0);
                self.out.put(&Record::Dlopen(rec::Dlopen {
                    ts_start: a[0],
                    ts,
                    tid,
                    filename: Bytes(filename),
                    resolved: Bytes(resolved),
                    flags: a[1] as i64 as i32,
                    lmid: a[2] as i64,
                    handle: a[3],
                }));
            }
            Kind::Dlclose => {
                self.out.put(&Record::Dlclose(rec::Dlclose {
                    ts,
                    tid,
                    handle: a[0],
                    ret: a[1] as i64 as i32,
                }));
                self.note_trigger(trigger::DLCLOSE, a[2], 0);
            }
            Kind::ImageLoad => {
                let mut r = SlotReader::new(slot.unwrap_or(&[]));
                let (key, bias) = (r.u64(), r.u64());
                let (dev, ino) = (r.u64(), r.u64());
                let n = r.u64();
                let mut phdrs = Vec::with_capacity(n.min(64) as usize);
                for _ in 0..n.min(64) {
                    let tf = r.u64();
                    let p = libc::Elf64_Phdr {
                        p_type: tf as u32,
                        p_flags: (tf >> 32) as u32,
                        p_offset: r.u64(),
                        p_vaddr: r.u64(),
                        p_paddr: 0,
                        p_filesz: r.u64(),
                        p_memsz: r.u64(),
                        p_align: r.u64(),
                    };
                    phdrs.push(phdr_rec(&p));
                }
                let (build_id, name) = (r.bytes(), r.bytes());
                let file = (ino != 0).then_some(((dev >> 32) as u32, dev as u32, ino));
                // An image opened through one of the application's descriptors
                // (/proc/self/fd/N): that descriptor reaches it while it stays open.
                let fd = name
                    .strip_prefix(b"/proc/self/fd/")
                    .and_then(|n| std::str::from_utf8(n).ok()?.parse::<i32>().ok())
                    .map(keep::Source::Fd);
                self.put_image(ts, a[0] as u8, key, bias, &phdrs, build_id, name, file, fd);
            }
            Kind::ImageUnload => {
                self.loaded.remove(&a[0]);
                self.emit(Record::ImageUnload(rec::ImageUnload {
                    ts,
                    id: a[0],
                    bias: a[1],
                    cause: a[2] as u8,
                }));
            }
            Kind::Thread => {
                self.out.put(&Record::Thread(rec::Thread {
                    ts,
                    tid,
                    thread: a[0],
                    ret: a[1] as i64 as i32,
                }));
                if a[1] == 0 {
                    self.note_trigger(trigger::THREAD, a[2], a[0]);
                }
            }
            Kind::Exec => {
                self.exec_ts = Some(ts);
                let path = slot.map(|s| SlotReader::new(s).bytes()).unwrap_or(b"");
                self.out.put(&Record::Exec(rec::Exec {
                    ts,
                    tid,
                    path: Bytes(path),
                }));
                self.note_trigger(trigger::EXEC, ts, 0);
            }
            Kind::Baseline => {
                let kernel = slot
                    .and_then(|t| mapagent_record::region::parse_maps(t).ok())
                    .unwrap_or_default();
                self.ids.learn(&kernel);
                self.write_reconcile(kernel, ts, trigger::BASELINE, true);
                self.baseline_done = true;
            }
            Kind::ExecFailed => {
                self.exec_pending = false;
                self.exec_ts = None;
            }
            Kind::Snapshot => {
                // Taken once the events before it are applied (see due_snapshots).
                let label = slot.map(|s| SlotReader::new(s).bytes()).unwrap_or(b"");
                self.pending_snapshots.push((label.to_vec(), tid));
            }
        }
    }
}
