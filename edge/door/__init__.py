"""Door-crossing sensors on the edge: who went through the street door, which way, when.

`zones.TwoZoneCounter` is the pure core both drivers share: two zones across the door line
(two infrared beams, or two halves of a time-of-flight sensor's field of view), a person
occupies one, then both, then the other. Drivers are thin adapters that feed it timestamped
zone changes: `beam.BeamSensor` (gpiozero) and `tof.TofSensor` (VL53L1X over I2C).
`link.DoorLink` opens the configured one and sends each crossing at once as a `door`
message. Only `link` is imported by the node; the hardware libraries load when a `[door]`
section asks for them. The method and its sources: docs/door.md.
"""
