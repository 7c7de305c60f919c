//! Hostile input: every checked view, on random bytes, never panics, and once
//! built keeps never panicking even when the bytes under it change.

use netvm_wire::{
    checksum, decrement_ttl_in_place, EthernetFrame, FlowKey, Ipv4Addr, Ipv4Packet, MacAddr,
    PacketMeta, TcpPacket, UdpPacket,
};
use proptest::prelude::*;

fn poke_ethernet(b: &mut [u8], scribble: &[u8]) {
    if let Ok(mut e) = EthernetFrame::new_checked(&mut *b) {
        let _ = (
            e.dst(),
            e.src(),
            e.ethertype(),
            e.outer_ethertype(),
            e.vlan_tci(),
        );
        let n = e.payload().len();
        assert_eq!(n + e.header_len(), e.as_bytes().len());
        e.swap_addrs();
        e.set_dst(MacAddr::BROADCAST);
        e.set_src(MacAddr::ZERO);
        e.set_ethertype(0x0800);
        // Scribble over the header (as a peer NF could), then use the view again.
        for (d, s) in e.as_bytes_mut().iter_mut().zip(scribble) {
            *d = *s;
        }
        let _ = (
            e.ethertype(),
            e.vlan_tci(),
            e.payload().len(),
            e.payload_mut().len(),
        );
    }
}

fn poke_ipv4(b: &mut [u8], scribble: &[u8]) {
    if let Ok(mut p) = Ipv4Packet::new_checked(&mut *b) {
        assert!(p.header_len() >= 20 && p.header_len() <= p.total_len());
        assert!(p.total_len() <= p.as_bytes().len());
        let _ = (
            p.dscp_ecn(),
            p.ident(),
            p.dont_frag(),
            p.more_frags(),
            p.frag_offset(),
            p.is_fragment(),
            p.ttl(),
            p.protocol(),
            p.checksum(),
            p.src(),
            p.dst(),
            p.options().len(),
            p.payload().len(),
            p.verify_checksum(),
        );
        let c = p.compute_checksum();
        p.fill_checksum();
        assert_eq!(p.checksum(), c);
        assert!(p.verify_checksum());
        p.swap_addrs();
        p.set_src(Ipv4Addr::new(1, 2, 3, 4));
        p.set_dst(Ipv4Addr::new(5, 6, 7, 8));
        assert!(
            p.verify_checksum(),
            "address rewrites keep the checksum valid"
        );
        let _ = p.decrement_ttl();
        assert!(
            p.verify_checksum(),
            "TTL decrement keeps the checksum valid"
        );
        p.set_ttl(1);
        for (d, s) in p.as_bytes_mut().iter_mut().zip(scribble) {
            *d = *s;
        }
        let _ = (p.payload().len(), p.options().len(), p.header().len());
        let _ = p.payload_mut().len();
        let _ = p.decrement_ttl();
        let _ = p.compute_checksum();
    }
}

fn poke_l4(b: &mut [u8], scribble: &[u8]) {
    let (s, d) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    if let Ok(mut u) = UdpPacket::new_checked(&mut *b) {
        let _ = (
            u.src_port(),
            u.dst_port(),
            u.len(),
            u.checksum(),
            u.payload().len(),
        );
        u.fill_checksum(s, d);
        assert!(u.verify_checksum(s, d));
        u.swap_ports();
        assert!(u.verify_checksum(s, d));
        u.set_src_port(1);
        u.set_dst_port(2);
        let _ = u.payload_mut().len();
    }
    if let Ok(mut t) = TcpPacket::new_checked(&mut *b) {
        let _ = (
            t.src_port(),
            t.dst_port(),
            t.seq(),
            t.ack(),
            t.header_len(),
            t.flags(),
            t.window(),
            t.checksum(),
            t.payload().len(),
        );
        t.fill_checksum(s, d);
        assert!(t.verify_checksum(s, d));
        t.swap_ports();
        assert!(t.verify_checksum(s, d));
        t.set_src_port(1);
        t.set_dst_port(2);
        let _ = t.payload_mut().len();
    }
    let _ = scribble;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(
        mut data in proptest::collection::vec(any::<u8>(), 0..160),
        scribble in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let _ = PacketMeta::parse(&data);
        let _ = FlowKey::from_ethernet(&data);
        let _ = checksum::checksum(&data);
        poke_ethernet(&mut data.clone(), &scribble);
        poke_ipv4(&mut data.clone(), &scribble);
        poke_l4(&mut data.clone(), &scribble);
        let _ = decrement_ttl_in_place(&mut data);
    }

    /// Mostly-valid IPv4 headers reach much deeper than uniform bytes.
    #[test]
    fn near_valid_ipv4_never_panics(
        ihl in 0u8..16,
        total in any::<u16>(),
        rest in proptest::collection::vec(any::<u8>(), 20..120),
        scribble in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let mut b = rest;
        b[0] = 0x40 | ihl;
        b[2..4].copy_from_slice(&(total % 140).to_be_bytes());
        poke_ipv4(&mut b.clone(), &scribble);
        if let Ok(p) = Ipv4Packet::new_checked(&b[..]) {
            let mut seg = p.payload().to_vec();
            poke_l4(&mut seg, &scribble);
        }
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&b);
        let _ = PacketMeta::parse(&frame);
        poke_ethernet(&mut frame, &scribble);
    }
}
