-- Wireshark dissector for the Context Transfer Protocol (CXTP, RFC 4067),
-- with the IANA values of RFC 4065 and this project's extensions (feature
-- profiles 0xFF00-0xFF03, segmentation blocks, the transfer id echo of an
-- identified transfer's CTDR, status codes >= 0x80).
--
-- Transports: TCP port 5091 (messages framed by the CXTP Length field, so one
-- TCP segment may hold several messages or part of one) and SCTP port 5091
-- (one message per DATA chunk).
--
--   tshark -X lua_script:conformance/wireshark/cxtp.lua -r capture.pcap -V
--
-- Every header field, address, token, key block, Context Data Block (with the
-- MLD profile and segmentation blocks decoded), request block and CTAA/CTDR
-- entry is shown; a CTDR that starts with exactly six entries of FPT 0xFF03
-- also shows the transfer id echo they carry in their Status octets
-- (transfer id, then V | message index). Inconsistent lengths are marked
-- with expert items.

local PORT = 5091

local cxtp = Proto("cxtp", "Context Transfer Protocol (RFC 4067)")

local msg_types = {
    [1] = "CTAR", [2] = "CTAA", [3] = "CTD", [4] = "PCTD",
    [5] = "CTDR", [6] = "CTC", [7] = "CT-Req",
}
local fpt_names = {
    [0x0000] = "Reserved",
    [0x0001] = "IPv6 Multicast Listener Context",
    [0xFF00] = "Segmentation (edge-mobility)",
    [0xFF01] = "Application service context (edge-mobility)",
    [0xFF02] = "TCP session context (edge-mobility)",
    [0xFF03] = "Transfer id echo (edge-mobility)",
}
local status_names = {
    [0x00] = "Success", [0x01] = "BAD_CHECKSUM",
    [0x80] = "Unsupported FPT", [0x81] = "Malformed context",
    [0x82] = "Reassembly failed", [0x83] = "Unauthorized", [0x84] = "Timeout",
}
local algorithms = { [1] = "HMAC_SHA1" }
local seg_kinds = { [1] = "TRANSFER", [2] = "SEGMENT" }

local f = cxtp.fields
f.version   = ProtoField.uint8("cxtp.version", "Version", base.DEC, nil, 0xE0)
f.type      = ProtoField.uint8("cxtp.type", "Type", base.DEC, msg_types, 0x1F)
f.v         = ProtoField.bool("cxtp.v", "V (IPv4 addresses)", 8, nil, 0x80)
f.a         = ProtoField.bool("cxtp.a", "A (acknowledgement requested)", 8, nil, 0x40)
f.s         = ProtoField.bool("cxtp.s", "S (all contexts received)", 8, nil, 0x40)
f.reserved6 = ProtoField.uint8("cxtp.reserved", "Reserved", base.HEX, nil, 0x3F)
f.reserved7 = ProtoField.uint8("cxtp.reserved7", "Reserved", base.HEX, nil, 0x7F)
f.length    = ProtoField.uint16("cxtp.length", "Length", base.DEC)
f.mn4       = ProtoField.ipv4("cxtp.mn_addr", "MN previous address")
f.mn6       = ProtoField.ipv6("cxtp.mn_addr6", "MN previous address")
f.ar4       = ProtoField.ipv4("cxtp.ar_addr", "Previous (new) AR address")
f.ar6       = ProtoField.ipv6("cxtp.ar_addr6", "Previous (new) AR address")
f.seq       = ProtoField.uint32("cxtp.seq", "Sequence Number", base.HEX)
f.token     = ProtoField.bytes("cxtp.token", "MN Authorization Token")
f.elapsed   = ProtoField.uint32("cxtp.elapsed_ms", "Elapsed Time (ms)", base.DEC)
f.key_alg   = ProtoField.uint16("cxtp.key.algorithm", "Algorithm", base.DEC, algorithms)
f.key_len   = ProtoField.uint16("cxtp.key.length", "Key Length", base.DEC)
f.key       = ProtoField.bytes("cxtp.key.key", "Key")
f.cdb       = ProtoField.none("cxtp.cdb", "Context Data Block")
f.req       = ProtoField.none("cxtp.request", "Requested Context Data Block")
f.cdb_fpt   = ProtoField.uint16("cxtp.cdb.fpt", "Feature Profile Type", base.HEX, fpt_names)
f.cdb_len   = ProtoField.uint8("cxtp.cdb.length", "Length (8-octet units)", base.DEC)
f.cdb_p     = ProtoField.bool("cxtp.cdb.p", "P (presence vector)", 8, nil, 0x80)
f.cdb_res   = ProtoField.uint8("cxtp.cdb.reserved", "Reserved", base.HEX, nil, 0x7F)
f.cdb_pv    = ProtoField.uint32("cxtp.cdb.presence_vector", "Presence Vector", base.HEX)
f.cdb_data  = ProtoField.bytes("cxtp.cdb.data", "Data")
f.cdb_pad   = ProtoField.bytes("cxtp.cdb.padding", "Padding")
f.entry     = ProtoField.none("cxtp.entry", "Entry")
f.ent_fpt   = ProtoField.uint16("cxtp.entry.fpt", "Feature Profile Type", base.HEX, fpt_names)
f.ent_stat  = ProtoField.uint8("cxtp.entry.status", "Status", base.HEX, status_names)
f.ent_res   = ProtoField.uint8("cxtp.entry.reserved", "Reserved", base.HEX)
f.mld_pfx   = ProtoField.bytes("cxtp.mld.prefix", "Subnet prefix (64 bits)")
f.mld_grp   = ProtoField.ipv6("cxtp.mld.group", "Multicast address")
f.seg_kind  = ProtoField.uint8("cxtp.seg.kind", "Kind", base.DEC, seg_kinds)
f.seg_last  = ProtoField.bool("cxtp.seg.last", "Last message", 8, nil, 0x80)
f.seg_innp  = ProtoField.bool("cxtp.seg.inner_p", "Inner P", 8, nil, 0x80)
f.seg_index = ProtoField.uint16("cxtp.seg.index", "Message index", base.DEC)
f.seg_tid   = ProtoField.uint32("cxtp.seg.transfer_id", "Transfer id", base.DEC)
f.seg_ifpt  = ProtoField.uint16("cxtp.seg.inner_fpt", "Inner Feature Profile Type", base.HEX, fpt_names)
f.seg_cid   = ProtoField.uint32("cxtp.seg.context_id", "Context id", base.DEC)
f.seg_ipv   = ProtoField.uint32("cxtp.seg.inner_pv", "Inner presence vector", base.HEX)
f.seg_total = ProtoField.uint32("cxtp.seg.total", "Total length", base.DEC)
f.seg_off   = ProtoField.uint32("cxtp.seg.offset", "Offset", base.DEC)
f.seg_clen  = ProtoField.uint32("cxtp.seg.chunk_length", "Chunk length", base.DEC)
f.seg_chunk = ProtoField.bytes("cxtp.seg.chunk", "Chunk")
f.echo      = ProtoField.none("cxtp.echo", "Transfer id echo")
f.echo_tid  = ProtoField.uint32("cxtp.echo.transfer_id", "Transfer id", base.HEX)
f.echo_v    = ProtoField.bool("cxtp.echo.verdict", "V (verdict of the whole transfer)")
f.echo_idx  = ProtoField.uint16("cxtp.echo.index", "Message index (0x7fff with V: the receiver gives up)", base.DEC)

local e_len   = ProtoExpert.new("cxtp.length.bad", "Length disagrees with the message", expert.group.MALFORMED, expert.severity.ERROR)
local e_trunc = ProtoExpert.new("cxtp.truncated", "Truncated field", expert.group.MALFORMED, expert.severity.ERROR)
local e_ver   = ProtoExpert.new("cxtp.version.bad", "Unsupported version", expert.group.MALFORMED, expert.severity.ERROR)
local e_type  = ProtoExpert.new("cxtp.type.bad", "Unknown message type", expert.group.MALFORMED, expert.severity.ERROR)
cxtp.experts = { e_len, e_trunc, e_ver, e_type }

local function addr(tree, tvb, off, v4, f4, f6)
    local n = v4 and 4 or 16
    if off + n > tvb:len() then
        tree:add_proto_expert_info(e_trunc, "address")
        return nil
    end
    tree:add(v4 and f4 or f6, tvb(off, n))
    return off + n
end

local function dissect_segment(tree, tvb, off, len)
    if len < 2 then return end
    local kind = tvb(off, 1):uint()
    tree:add(f.seg_kind, tvb(off, 1))
    if kind == 1 and len >= 8 then
        tree:add(f.seg_last, tvb(off + 1, 1))
        tree:add(f.seg_index, tvb(off + 2, 2))
        tree:add(f.seg_tid, tvb(off + 4, 4))
    elseif kind == 2 and len >= 24 then
        tree:add(f.seg_innp, tvb(off + 1, 1))
        tree:add(f.seg_ifpt, tvb(off + 2, 2))
        tree:add(f.seg_cid, tvb(off + 4, 4))
        tree:add(f.seg_ipv, tvb(off + 8, 4))
        tree:add(f.seg_total, tvb(off + 12, 4))
        tree:add(f.seg_off, tvb(off + 16, 4))
        tree:add(f.seg_clen, tvb(off + 20, 4))
        local clen = tvb(off + 20, 4):uint()
        if clen > 0 and 24 + clen <= len then
            tree:add(f.seg_chunk, tvb(off + 24, clen))
        elseif 24 + clen > len then
            tree:add_proto_expert_info(e_trunc, "segment chunk")
        end
    end
end

-- Data CDBs (CTD/PCTD). Returns false on a fatal length error.
local function dissect_cdbs(tree, tvb, off, stop)
    local i = 0
    while off < stop do
        if stop - off < 4 then
            tree:add_proto_expert_info(e_trunc, "context data block header")
            return false
        end
        local fpt = tvb(off, 2):uint()
        local units = tvb(off + 2, 1):uint()
        local p = bit.band(tvb(off + 3, 1):uint(), 0x80) ~= 0
        local total = units * 8
        local hdr = p and 8 or 4
        if total < hdr or off + total > stop then
            local t = tree:add(f.cdb, tvb(off, stop - off))
            t:add(f.cdb_fpt, tvb(off, 2))
            t:add(f.cdb_len, tvb(off + 2, 1))
            t:add_proto_expert_info(e_trunc, "context data block Length")
            return false
        end
        local t = tree:add(f.cdb, tvb(off, total))
        t:append_text(string.format(" %d: FPT 0x%04x, %d octets", i, fpt, total))
        t:add(f.cdb_fpt, tvb(off, 2))
        t:add(f.cdb_len, tvb(off + 2, 1))
        t:add(f.cdb_p, tvb(off + 3, 1))
        t:add(f.cdb_res, tvb(off + 3, 1))
        if p then t:add(f.cdb_pv, tvb(off + 4, 4)) end
        local dlen = total - hdr
        if dlen > 0 then
            local d = t:add(f.cdb_data, tvb(off + hdr, dlen))
            if fpt == 0x0001 and dlen >= 24 then
                d:add(f.mld_pfx, tvb(off + hdr, 8))
                d:add(f.mld_grp, tvb(off + hdr + 8, 16))
            elseif fpt == 0xFF00 then
                dissect_segment(d, tvb, off + hdr, dlen)
            end
        end
        off = off + total
        i = i + 1
    end
    return true
end

-- Request blocks (CTAR/CT-Req), lenient about Length 0 or 1.
local function dissect_requests(tree, tvb, off, stop)
    while off < stop do
        if stop - off < 4 then
            tree:add_proto_expert_info(e_trunc, "request block")
            return
        end
        local units = tvb(off + 2, 1):uint()
        local p = bit.band(tvb(off + 3, 1):uint(), 0x80) ~= 0
        local hdr = p and 8 or 4
        local size = math.max(hdr, units * 8)
        if off + size > stop then
            tree:add_proto_expert_info(e_trunc, "request block")
            return
        end
        local t = tree:add(f.req, tvb(off, size))
        t:append_text(string.format(": FPT 0x%04x", tvb(off, 2):uint()))
        t:add(f.cdb_fpt, tvb(off, 2))
        t:add(f.cdb_len, tvb(off + 2, 1))
        t:add(f.cdb_p, tvb(off + 3, 1))
        t:add(f.cdb_res, tvb(off + 3, 1))
        if p then t:add(f.cdb_pv, tvb(off + 4, 4)) end
        if size > hdr then t:add(f.cdb_pad, tvb(off + hdr, size - hdr)) end
        off = off + size
    end
end

local ECHO_FPT = 0xFF03
local ECHO_ENTRIES = 6

-- The transfer id echo: exactly six leading entries of FPT 0xFF03, one
-- octet of (transfer id u32 | V bit | index u15) in each Status.
local function dissect_echo(tree, tvb, off, stop)
    local n = 0
    while off + 4 * (n + 1) <= stop and tvb(off + 4 * n, 2):uint() == ECHO_FPT do
        n = n + 1
    end
    if n ~= ECHO_ENTRIES then return end
    local s = {}
    for i = 0, ECHO_ENTRIES - 1 do s[i] = tvb(off + 4 * i + 2, 1):uint() end
    local tid = ((s[0] * 256 + s[1]) * 256 + s[2]) * 256 + s[3]
    local vi = s[4] * 256 + s[5]
    local verdict = vi >= 0x8000
    local index = verdict and vi - 0x8000 or vi
    local range = tvb(off, 4 * ECHO_ENTRIES)
    local t = tree:add(f.echo, range)
    t:append_text(string.format(": transfer 0x%08x, %s %d", tid,
        verdict and "verdict, message" or "message", index))
    t:add(f.echo_tid, range, tid)
    t:add(f.echo_v, range, verdict)
    t:add(f.echo_idx, range, index)
end

local function dissect_entries(tree, tvb, off, stop, ctdr)
    if ctdr then dissect_echo(tree, tvb, off, stop) end
    while off + 4 <= stop do
        local t = tree:add(f.entry, tvb(off, 4))
        t:append_text(string.format(": FPT 0x%04x, status 0x%02x", tvb(off, 2):uint(), tvb(off + 2, 1):uint()))
        t:add(f.ent_fpt, tvb(off, 2))
        t:add(f.ent_stat, tvb(off + 2, 1))
        t:add(f.ent_res, tvb(off + 3, 1))
        off = off + 4
    end
    if off < stop then tree:add_proto_expert_info(e_trunc, "FPT/status entry") end
end

-- One complete message in tvb (starting at 0).
local function dissect_message(tvb, pinfo, root)
    local tree = root:add(cxtp, tvb())
    if tvb:len() < 4 then
        tree:add_proto_expert_info(e_trunc, "header")
        return
    end
    local b0 = tvb(0, 1):uint()
    local version = bit.rshift(b0, 5)
    local mtype = bit.band(b0, 0x1F)
    local name = msg_types[mtype] or string.format("Unknown(%d)", mtype)
    local v4 = bit.band(tvb(1, 1):uint(), 0x80) ~= 0
    tree:append_text(", " .. name)
    pinfo.cols.protocol = "CXTP"
    if pinfo.private["cxtp_seen"] == "1" then
        pinfo.cols.info:append(", " .. name)
    else
        pinfo.cols.info = name
        pinfo.private["cxtp_seen"] = "1"
    end
    local hv = tree:add(f.version, tvb(0, 1))
    if version ~= 1 then hv:add_proto_expert_info(e_ver) end
    local ht = tree:add(f.type, tvb(0, 1))
    if msg_types[mtype] == nil then
        ht:add_proto_expert_info(e_type)
        return
    end
    tree:add(f.v, tvb(1, 1))
    if mtype == 1 or mtype == 3 or mtype == 4 then
        tree:add(f.a, tvb(1, 1))
        tree:add(f.reserved6, tvb(1, 1))
    elseif mtype == 5 then
        tree:add(f.s, tvb(1, 1))
        tree:add(f.reserved6, tvb(1, 1))
    else
        tree:add(f.reserved7, tvb(1, 1))
    end
    local lt = tree:add(f.length, tvb(2, 2))
    local len = tvb(2, 2):uint()
    if len ~= tvb:len() then
        lt:add_proto_expert_info(e_len)
        return
    end
    local off = 4
    if mtype == 3 or mtype == 4 then
        if off + 4 > len then tree:add_proto_expert_info(e_trunc, "Elapsed Time"); return end
        tree:add(f.elapsed, tvb(off, 4))
        off = off + 4
    end
    off = addr(tree, tvb, off, v4, f.mn4, f.mn6)
    if off == nil then return end
    if mtype == 1 then
        off = addr(tree, tvb, off, v4, f.ar4, f.ar6)
        if off == nil then return end
    end
    if mtype == 1 or mtype == 7 then
        if off + 8 > len then tree:add_proto_expert_info(e_trunc, "Sequence Number / Token"); return end
        tree:add(f.seq, tvb(off, 4))
        tree:add(f.token, tvb(off + 4, 4))
        dissect_requests(tree, tvb, off + 8, len)
    elseif mtype == 2 or mtype == 5 then
        dissect_entries(tree, tvb, off, len, mtype == 5)
    elseif mtype == 3 or mtype == 4 then
        if mtype == 4 then
            if off + 4 > len then tree:add_proto_expert_info(e_trunc, "key block"); return end
            tree:add(f.key_alg, tvb(off, 2))
            tree:add(f.key_len, tvb(off + 2, 2))
            local klen = tvb(off + 2, 2):uint()
            if off + 4 + klen > len then tree:add_proto_expert_info(e_trunc, "Key"); return end
            if klen > 0 then tree:add(f.key, tvb(off + 4, klen)) end
            off = off + 4 + klen
        end
        dissect_cdbs(tree, tvb, off, len)
    elseif mtype == 6 then
        if off ~= len then tree:add_proto_expert_info(e_len, "octets after the MN address") end
    end
end

-- TCP: frame by the header Length (at least the 4-octet header).
local function pdu_len(tvb, pinfo, off)
    local l = tvb(off + 2, 2):uint()
    if l < 4 then return 4 end
    return l
end

function cxtp.dissector(tvb, pinfo, tree)
    pinfo.private["cxtp_seen"] = "0"
    dissect_tcp_pdus(tvb, tree, 4, pdu_len, function(t, p, r)
        dissect_message(t, p, r)
        return t:len()
    end)
    return tvb:len()
end

-- SCTP: one message per DATA chunk.
local cxtp_sctp = Proto("cxtp_sctp", "CXTP over SCTP")
function cxtp_sctp.dissector(tvb, pinfo, tree)
    pinfo.private["cxtp_seen"] = "0"
    dissect_message(tvb, pinfo, tree)
    return tvb:len()
end

DissectorTable.get("tcp.port"):add(PORT, cxtp)
DissectorTable.get("sctp.port"):add(PORT, cxtp_sctp)
