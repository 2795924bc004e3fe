"""The package layout: one importable `syncvp_ros` holds both our modules and the generated interface."""
import pathlib
import xml.etree.ElementTree as ET

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_generated_interface_and_own_package_are_one_package():
    import syncvp_ros
    from syncvp_ros.msg import RGBDPrediction
    from rclpy.serialization import deserialize_message, serialize_message

    assert "predictor node" in syncvp_ros.__doc__
    msg = RGBDPrediction(guidance_mode=RGBDPrediction.GUIDANCE_DEPTH, diffusion_steps=25, model_id="tiny")
    back = deserialize_message(serialize_message(msg), RGBDPrediction)
    assert (back.guidance_mode, back.diffusion_steps, back.model_id) == ("depth", 25, "tiny")


def test_package_xml_is_format_3_and_names_the_package():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "syncvp_ros"
    assert root.find("export/build_type").text == "ament_cmake"
