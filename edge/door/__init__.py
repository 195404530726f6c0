"""Door-crossing sensors on the edge: who went through the street door, which way, when.

`zones.TwoZoneCounter` is the pure core; `beam.BeamSensor` (gpiozero) and `tof.TofSensor`
(VL53L1X over I2C) are thin drivers feeding it timestamped zone changes, and `link.DoorLink`
opens the configured one and sends each crossing at once. Only `link` is imported by the node;
the hardware libraries load when a `[door]` section asks for them. docs/door.md.
"""
